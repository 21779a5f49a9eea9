"""The device side of programmatic dependent launch (PDL, sm_90+), shared by the kernels that use it. The
host side (Triton's launch_pdl, the USE_PDL constexpr) is allmos.triton_shared.support.pdl_launch."""

import triton
import triton.language as tl

try:
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

    TRITON_HAS_PDL = True
except ImportError:  # before Triton 3.4 (torch < 2.8): kernels run with USE_PDL=False (support.check_pdl_option)
    gdc_launch_dependents = gdc_wait = None
    TRITON_HAS_PDL = False


@triton.jit
def wait_for_previous_kernel(USE_PDL: tl.constexpr):
    """Under PDL: let the next kernel launch at once, then wait until the previous kernel has finished
    and its writes are visible. A program reads nothing the previous kernels wrote, and writes nothing
    they read, before this."""
    if USE_PDL:
        gdc_launch_dependents()
        gdc_wait()
