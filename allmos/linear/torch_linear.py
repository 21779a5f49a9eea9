from allmos.linear.base import LinearPlugin
from allmos.registry import register


@register("linear", "torch")
class TorchLinear(LinearPlugin):
    """Every projection through F.linear (cuBLAS), after its own norm or activation op."""
