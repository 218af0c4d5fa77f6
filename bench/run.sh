#!/usr/bin/env bash
# run.sh — builds the benchmarks (Release) and writes bench/RESULTS.md.
# Benchmarks time things; tests never do. Usage: bash bench/run.sh
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
bash tests/setup-debian.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target bench_quant bench_quant_cost bench_llama bench_attention bench_wait bench_allocate bench_trick_norm bench_qmatmul raana-mpi
out=bench/RESULTS.md
# The core OpenBLAS dispatches to here (a generic one makes every ratio to
# sgemm too flattering: docs/SCALING.md, "BLAS kernels").
blas_core() {
  /usr/bin/python3 -c 'import ctypes; l = ctypes.CDLL("libopenblas.so.0")
l.openblas_get_corename.restype = l.openblas_get_config.restype = ctypes.c_char_p
print("core %s, %s" % (l.openblas_get_corename().decode(), l.openblas_get_config().decode()))'
}
{
  echo "# Benchmark results"
  echo
  echo "Written by \`bash bench/run.sh\` on $(date -u +%Y-%m-%d): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs),"
  echo "$(nproc) cores. Times are the best of 3 runs; ratios are to a baseline measured in the same run."
  echo "BLAS: $(blas_core) (openblas_get_corename; every sgemm baseline below ran on this core;"
  echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset})."
  echo
  echo "## Quantizer (issue 3): RaBitQ-H on Gaussian layers"
  echo
  echo "Ratios to one single-threaded \`cblas_sgemm\` of 4096x4096x4096 (OpenBLAS). Targets at B = 4"
  echo "on 4096x4096, one thread: exact encode <= 0.5, fast encode <= 0.05, rotation <= 0.02."
  echo "Fast cosine loss = (exact cosine - fast cosine) / exact cosine, mean over columns."
  echo
  OPENBLAS_NUM_THREADS=1 ./build-bench/bench_quant
  echo
  echo "## Quantize cost model (issue 11): what the stage does per layer, by shape, bits, encoder"
  echo
  echo "ns per weight, one thread, best of 5; the fit and src/quant/balance.c's prediction"
  echo "(docs/SCALING.md, \"Quantize stage balance\")."
  echo
  OPENBLAS_NUM_THREADS=1 ./build-bench/bench_quant_cost
  echo
  echo "## Forward and backward (issue 4): one Llama-2-7B-shaped block"
  echo
  echo "Hidden 4096, intermediate 11008, 32 heads, random weights, 512 tokens, one thread;"
  echo "FLOPs counted: linears forward and input gradients, attention products."
  echo
  echo "| what | measured |"
  echo "|---|---|"
  OPENBLAS_NUM_THREADS=1 ./build-bench/bench_llama
  echo
  echo "## Long sequences (issue 11): blocked attention in one Llama-2-7B-shaped block"
  echo
  echo "Calibration forward + backward over one T-token sequence, random weights, one thread,"
  echo "attention tiles of 128 (src/nn/attention.c). FLOPs counted: linears forward and input"
  echo "gradients, causal attention products (2 forward, 4 backward; the backward's recomputed"
  echo "scores are not counted). Target at T = 4096: >= 60% of sgemm."
  echo
  echo "| what | measured |"
  echo "|---|---|"
  for t in 1024 4096; do
    OPENBLAS_NUM_THREADS=1 ./build-bench/bench_attention "$t"
  done
  echo
  echo "## The quantized product (issue 11): 4096 x 11008, 512 tokens"
  echo
  echo "raana_qlayer_matmul (Y = X What^T from the codes, What never formed) against one sgemm of"
  echo "the same product with the f32 weight, measured in the same run; fast encoder, default"
  echo "tricks. Target at B = 4: <= 1.5x sgemm."
  echo
  OPENBLAS_NUM_THREADS=1 ./build-bench/bench_qmatmul
  echo
  echo "## Waiting ranks (issue 11): CPU time of a rank that waits 2 s for a message"
  echo
  echo "Two ranks on one node, Open MPI's vader transport, \`mpi_yield_when_idle\` off (its"
  echo "default on a node that is not oversubscribed). raana_recv_idle: src/pipeline/wait.c."
  echo
  echo "| what | measured |"
  echo "|---|---|"
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
    OMPI_MCA_mpi_yield_when_idle=0 mpirun -n 2 ./build-bench/bench_wait
  echo
  echo "## AllocateBits (issue 5): Llama-2-70B-shaped instance, 560 layers"
  echo
  echo "Target: exact DP and fallback each under a second. DP memory is one byte per"
  echo "(layer, scaled budget) cell; gap bound = (fallback cost - its Lagrangian lower bound) / cost."
  echo
  ./build-bench/bench_allocate
  echo
  echo "## Memory per rank (issue 11): 2 Llama-2-7B-shaped blocks, 1 rank"
  echo
  echo "bench/bench_memory.sh: the job's own report (VmHWM, from the job log) against the f32"
  echo "shard, the documented calibration activations and the dry-run estimate."
  echo
  bash bench/bench_memory.sh build-bench
  echo
  echo "## AllocateBits' norms (issue 11): one 4096 x 11008 layer"
  echo
  echo "The norm after the tricks, the old way (a copy of the layer, in the allocate stage) and"
  echo "copy-free (now in the load stage). Process CPU time, best of 3, and minor page faults."
  echo
  echo "| what | measured |"
  echo "|---|---|"
  ./build-bench/bench_trick_norm
  echo
  echo "## The whole job (issue 5): synthetic 56M-parameter LLaMA, 4 blocks"
  echo
  echo "raana-mpi on random BF16 weights (hidden 1024, intermediate 2816), 2 calibration"
  echo "windows of 256 tokens, avg_bits 3 over 1..8. Stage times from the job's own report"
  echo "(the run with the fastest write of 3). The write stage (HDF5 collective writes, zstd"
  echo "level 3, Fletcher-32, then read-back verification is not included) is compared with dd"
  echo "writing the same number of bytes with fsync, in the same run."
  echo
  bash bench/bench_pipeline.sh build-bench
  echo
  echo "## Ranks that help (issue 11): 4 Llama-2-7B-shaped blocks, 1 and 2 ranks"
  echo
  echo "bench/bench_ranks.sh: 4 calibration windows of 256 tokens, avg_bits 3, exact encoder,"
  echo "with the huge-page advice of large buffers (src/util/huge_alloc.c) and without it"
  echo "(RAANA_HUGE_PAGES=0) in the same run. Targets: speedup >= 1.7, CPU ratio <= 1.15."
  echo
  bash bench/bench_ranks.sh build-bench
  echo
  echo "## The cost model (issue 11): fitted on 2 Llama-2-7B-shaped blocks, checked on 4"
  echo
  echo "bench/fit_cost_model.sh: the [cost] rates from one rank on 2 blocks, then the dry run's"
  echo "prediction for 4 blocks on 1 and 2 ranks against measured runs (acceptance: within 25%)."
  echo
  bash bench/fit_cost_model.sh build-bench
} >"$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
