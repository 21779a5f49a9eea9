from allmos.models.decoder import DecoderForCausalLM, FamilyTraits
from allmos.registry import register


@register("model", "LlamaForCausalLM")
class LlamaForCausalLM(DecoderForCausalLM):
    traits = FamilyTraits()
