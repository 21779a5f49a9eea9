"""allmos: an LLM inference engine built as a research harness."""

from allmos.llm import LLM
from allmos.sampling_params import SamplingParams

__all__ = ["LLM", "SamplingParams"]
