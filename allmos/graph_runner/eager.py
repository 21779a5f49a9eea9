"""`eager` (cuda_graphs=false): every forward runs op by op."""

from allmos.graph_runner.base import GraphRunner
from allmos.registry import register


@register("graph_runner", "eager")
class EagerRunner(GraphRunner):
    def forward(self, input_ids, positions, meta):
        return self.run_eager(input_ids, positions, meta)
