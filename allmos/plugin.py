"""What every switchable plugin (attention backend, KV store, rope, sampler) shares."""

from __future__ import annotations


class Plugin:
    """Holds its options; class attributes and `check` say where and with what it can run, so a
    config that asks for more is refused before the model loads."""

    devices: tuple[str, ...] = ("cpu", "cuda")

    def __init__(self, options):
        self.options = options

    @classmethod
    def runs_on(cls) -> tuple[str, ...]:
        return cls.devices

    @classmethod
    def check(cls, config) -> None:
        """Raise ConfigError naming the switch if this plugin cannot run with `config`."""
