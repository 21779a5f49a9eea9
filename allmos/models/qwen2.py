from allmos.models.decoder import DecoderForCausalLM, FamilyTraits
from allmos.registry import register


@register("model", "Qwen2ForCausalLM")
class Qwen2ForCausalLM(DecoderForCausalLM):
    traits = FamilyTraits(qkv_bias=True)
