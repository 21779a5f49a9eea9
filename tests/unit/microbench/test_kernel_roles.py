"""Kernel names from real step timelines (H100, 2026-12-07: cuBLAS, Inductor, ATen and allmos' Triton kernels)
sorted into the roles step_timeline sums a step by, and the floors it prints beside them."""

import pytest

from allmos.microbench.kernel_roles import INPUTS, ROLES, floors_us, role_of, us_per_role

ELEMENT_WISE = "norms, rope, SiLU, KV store"
NAMES = {
    "_decode_split_kernel": "attention",
    "_decode_combine_kernel": "attention",
    "_prefill_kernel": "attention",
    "nvjet_sm90_tst_64x32_64x16_1x2_h_bz_TNT": "projections",
    "void cublasLt::splitKreduce_kernel<32, 16, int, float, __nv_bfloat16, float, __nv_bfloat16": "projections",
    "rows_linear_kernel": "projections",
    "_skinny_linear_kernel": "projections",
    "_add_rms_norm_linear_kernel": "projections",
    "_add_rms_norm_qkv_rope_kernel": "projections",
    "_silu_mul_linear_kernel": "projections",
    "triton_poi_fused_mul_silu_split_0": ELEMENT_WISE,
    "triton_per_fused__to_copy_add_mean_mul_pow_rsqrt_0": ELEMENT_WISE,
    "_qk_norm_rope_kernel": ELEMENT_WISE,
    "_store_kv_kernel": ELEMENT_WISE,
    "_chunk_best_kernel": "sampling",
    "_row_best_kernel": "sampling",
    "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::ArgMaxOps<float>": "sampling",
    "void at::native::radixSortKVInPlace<-2, -1, 32, 32, int, long, unsigned int>(at::cuda::detail::Tenso": INPUTS,
    "void at::native::(anonymous namespace)::indexSelectSmallIndex<c10::BFloat16, long, unsigned int, 2, ": INPUTS,
    "void at::native::vectorized_gather_kernel<16, long>(char*, char*, long*, int, long, long, long, long": INPUTS,
    "void (anonymous namespace)::elementwise_kernel_with_index<int, at::native::arange_cuda_out(c10::Scal": INPUTS,
    "_load_static_inputs_kernel": INPUTS,
    "Memcpy HtoD (Pinned -> Device)": INPUTS,
    "memcpy32_post": INPUTS,
    "Memset (Unknown)": INPUTS,
    "some_new_kernel": "other",
}


@pytest.mark.parametrize("name,role", NAMES.items())
def test_each_kernel_counts_under_its_main_work(name, role):
    assert role_of(name) == role


def test_a_projection_launched_once_a_step_is_the_lm_head():
    kernels = [
        {"name": "nvjet_sm90_tst_96x128_64x7_2x1_v_bz_TNN", "calls_per_step": 28.0, "us_per_step": 210.0},
        {"name": "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_TNT", "calls_per_step": 1.0, "us_per_step": 114.0},
        {"name": "_decode_split_kernel", "calls_per_step": 28.0, "us_per_step": 7000.0},
        {"name": "_skinny_linear_kernel", "calls_per_step": 29.0, "us_per_step": 320.0},  # o (28) + the LM head
        {"name": "memcpy32_post", "calls_per_step": 3.0, "us_per_step": 3.0},
    ]
    assert us_per_role(kernels, num_layers=28) == {
        "attention": 7000.0,
        "projections": 530.0,
        "lm head": 114.0,
        INPUTS: 3.0,
    }
    roles = ("attention", "projections", "lm head", INPUTS)
    assert list(us_per_role(kernels, num_layers=28)) == [role for role in ROLES if role in roles]  # ROLES' order


def test_floors_are_the_steps_bytes_at_the_copy_bandwidth():
    # 256 sequences x 1,024 tokens of bf16 K/V (28 layers, 8 heads, 128 dims): 30.06 GB; 1.2 GB of weights; 4 TB/s.
    kv_per_token = 2 * 28 * 8 * 128 * 2
    floors = floors_us(256 * 1024, kv_per_token, 1_200_000_000, 4e12)
    assert floors["kv_read_us"] == pytest.approx(256 * 1024 * kv_per_token / 4e6)
    assert floors["kv_read_us"] == pytest.approx(7516.2, abs=0.1)
    assert floors["weights_us"] == pytest.approx(300.0)
