"""A tensor-parallel launch from a script without the main guard is refused, saying why."""

import os
import subprocess
import sys

from repo_paths import ROOT

ARCH = (
    '{"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "vocab_size": 256, "hidden_size": 64, '
    '"intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, '
    '"head_dim": 16}'
)
BUILD = f'LLM(None, device="cpu", architecture={ARCH}, random_weights="always", tensor_parallel_size=2)'


def run_script(tmp_path, text: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(text)
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)


def test_unguarded_script_is_refused_naming_the_guard(tmp_path):
    proc = run_script(tmp_path, f"from allmos import LLM\n\nllm = {BUILD}\n")
    assert proc.returncode == 1
    assert "tensor_parallel_size: 2 ranks start worker processes with the spawn method" in proc.stderr
    assert 'if __name__ == "__main__":' in proc.stderr and "line 3" in proc.stderr


def test_guarded_script_passes_the_check(tmp_path):
    text = (
        "from allmos.distributed.main_guard import check_main_guard\n\n"
        "def build():\n    check_main_guard(2)\n\n"
        'if __name__ == "__main__":\n    build()\n    print("guarded ok")\n'
    )
    proc = run_script(tmp_path, text)
    assert proc.returncode == 0 and "guarded ok" in proc.stdout, proc.stderr
    proc = run_script(tmp_path, text.replace('if __name__ == "__main__":\n    build()', "build()\nif True:"))
    assert proc.returncode == 1 and "line 6" in proc.stderr
