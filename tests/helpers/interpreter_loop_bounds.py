"""Triton <= 3.6's interpreter turns a tensor loop bound into an int with int(<array of shape (1,)>), which
numpy >= 2.4 rejects (triton-lang/triton#9171). The upstream fix, for the fixture in triton_guards and for
the engine scripts that run in a process of their own."""


def with_index(original):
    """`interpreter._patch_lang_tensor` that also gives interpreted tensors an `__index__`."""

    def patch_lang_tensor(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    return patch_lang_tensor


def install() -> None:
    """For a whole process (the engine scripts run under TRITON_INTERPRET=1 in a fresh one)."""
    from triton.runtime import interpreter

    interpreter._patch_lang_tensor = with_index(interpreter._patch_lang_tensor)
