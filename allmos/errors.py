"""Errors raised at the boundaries, each naming the switch or request at fault."""


class ConfigError(ValueError):
    """A switch or a combination of switches that cannot run; raised before weights load."""

    def __init__(self, switch: str, reason: str):
        super().__init__(f"{switch}: {reason}")
        self.switch = switch


class RequestError(ValueError):
    """A request given to generate() that cannot be served; raised before any work starts."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"request {index}: {reason}")
        self.index = index
