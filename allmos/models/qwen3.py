from allmos.models.decoder import DecoderForCausalLM, FamilyTraits
from allmos.registry import register


@register("model", "Qwen3ForCausalLM")
class Qwen3ForCausalLM(DecoderForCausalLM):
    traits = FamilyTraits(qk_norm=True)
