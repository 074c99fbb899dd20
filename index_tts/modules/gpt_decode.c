/* A decode step's GPT-2 blocks in one call, for the few rows of a beam search, on our kernels.
 *
 * Why: at 3 rows a block's work is its four weight streams (panel_linear.c) and the attention
 * over its cache (decode_attention.c). Run as torch ops from Python, the ~10 small ops around
 * them per block (layer norms, gelu, residual adds, views) cost ~5 ms of a ~50 ms step here
 * (docs/performance.md), more than the work they do; here they are a few microseconds each, and
 * the gelu and the residual adds ride on the linear layers' output stores.
 *
 * Each block, on x [rows, d] in place (GPT-2, pre-norm):
 *   x += c_proj(attention(c_attn(ln_1(x))))      keys and values written at position `pos`
 *   x += mlp.c_proj(gelu_new(mlp.c_fc(ln_2(x))))
 * c_attn stores its keys and values straight into the cache: written by themselves after the
 * product, as 144 runs of 5 KB to cold memory a step, they took 0.4-1.6 ms of one thread's time
 * (store misses and first-touch page faults) while the other waited at the next barrier; inside
 * the product each thread's few stores overlap its weight stream.
 * The weights are 64-column panels, fp32 or bf16 (the fast mode); everything else is fp32.
 * origin: the cache's row for each (row, position), as decode_attention.c. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <omp.h>

#include "panel_linear.h"
#include "vector_math.h"

int decode_attention_supported(int head_dim);
void decode_attention_part(const float *q, int rows, int heads, int head_dim, const float *kv, int batch,
                           int max_len, const int32_t *origin, int n, float scale, float *out, float *partials,
                           float *scores, int me, int used);

struct block_weights {
    const float *ln1_weight, *ln1_bias, *ln2_weight, *ln2_bias;
    const void *qkv, *out, *fc, *proj; /* panels */
    const float *qkv_bias, *out_bias, *fc_bias, *proj_bias;
    float *kv; /* this layer's cache [2, batch, max_len, d] */
};

/* Row by row, with 16-lane partial sums: a scalar running sum over 1280 entries is a chain of
 * 1280 dependent adds, and a step has 48 of these layer norms. */
static void layer_norm(const float *x, int rows, int d, const float *weight, const float *bias, float eps, float *y) {
    for (int r = 0; r < rows; r++, x += d, y += d) {
        f32x16 acc = {0};
        int i = 0;
        for (; i + LANES <= d; i += LANES) acc += load16(x + i);
        float mean = sum16(acc);
        for (; i < d; i++) mean += x[i];
        mean /= d;
        f32x16 dev = {0};
        for (i = 0; i + LANES <= d; i += LANES) {
            f32x16 v = load16(x + i) - mean;
            dev += v * v;
        }
        float var = sum16(dev);
        for (; i < d; i++) var += (x[i] - mean) * (x[i] - mean);
        float inv = 1.0f / sqrtf(var / d + eps);
        for (i = 0; i < d; i++) y[i] = (x[i] - mean) * inv * weight[i] + bias[i];
    }
}

/* A run of panels that its owner reads front to back and another thread may take from the back
 * once its own run is done: front in the low 32 bits, back (one past the last) in the high. One
 * per (linear layer, thread), each on its own 64-byte line, so the owner's claims stay in its
 * own cache until a thief comes. */
typedef struct {
    uint64_t bounds;
    char pad[56];
} run_t;

static inline uint64_t bounds(uint32_t front, uint32_t back) { return (uint64_t)back << 32 | front; }

/* Claims the run's front panel (or, for a thief, its back one): its index, or -1 when none is left. */
static int claim(run_t *run, int from_back) {
    uint64_t now = __atomic_load_n(&run->bounds, __ATOMIC_RELAXED);
    for (;;) {
        uint32_t front = (uint32_t)now, back = (uint32_t)(now >> 32);
        if (front >= back) return -1;
        uint64_t next = from_back ? bounds(front, back - 1) : bounds(front + 1, back);
        if (__atomic_compare_exchange_n(&run->bounds, &now, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return from_back ? (int)back - 1 : (int)front;
    }
}

/* This thread's share of a linear layer (`layer`: the step's linear layers in order, each with a
 * run per thread in `runs`). Each thread reads its own run of panels front to back, then takes
 * panels from the back of the others' runs until none is left: with a fixed split, the thread
 * whose share of the bandwidth was smaller held the other at the barrier that follows, 1.4-3.5 ms
 * a step in all. A panel is still read front to back and is one thread's in-order sum, so the
 * results do not depend on who took it. Consecutive layers' panels lie one after another in
 * memory (panel_linear.hold_in_huge_pages), so the runs alternate in direction from layer to
 * layer: the thread that read the end of one layer reads the start of the next, one stream
 * across the boundary. */
static void linear_part(int bf16, const float *x, int m, int k, const void *w, const float *bias,
                        const struct outputs *out, int n, int epilogue, int layer, run_t *runs, int me, int used) {
    const int mine = layer & 1 ? used - 1 - me : me;
    for (int i = 0; i < used; i++) {
        run_t *run = runs + (size_t)layer * used + (mine + i) % used;
        for (int p; (p = claim(run, i > 0)) >= 0;) {
            if (bf16)
                panel_linear_bf16_panels(x, m, k, w, bias, out, n, epilogue, p, p + 1);
            else
                panel_linear_f32_panels(x, m, k, w, bias, out, n, epilogue, p, p + 1);
        }
    }
}

/* x [rows, d] through `layers` blocks, in one parallel region (a barrier where a layer needs the
 * whole of the previous one's output, instead of a parallel region per layer). Each thread
 * normalizes x into its own buffer, so the layer norms need no barrier. Returns 0, or -1
 * (attention's head_dim, or out of memory). */
int gpt2_decode_blocks(float *x, int rows, int layers, const struct block_weights *blocks, int d, int heads,
                       int inner, int bf16, float eps, int batch, int max_len, const int32_t *origin, int pos,
                       int n) {
    const int head_dim = d / heads, threads = omp_get_max_threads();
    if (!decode_attention_supported(head_dim)) return -1;
    const size_t normed_each = (size_t)rows * d, scores_each = (size_t)heads * (n + 1);
    const size_t partials_size = ((size_t)2 * heads + d) * rows * threads;
    float *q = malloc(sizeof(float) * ((size_t)rows * (2 * d + inner) + partials_size
                                       + (normed_each + scores_each) * threads));
    run_t *runs = aligned_alloc(sizeof(run_t), sizeof(run_t) * layers * 4 * threads);
    if (!q || !runs) {
        free(q);
        free(runs);
        return -1;
    }
    float *attended = q + (size_t)rows * d, *hidden = attended + (size_t)rows * d;
    float *partials = hidden + (size_t)rows * inner, *normed = partials + partials_size;
    float *scores = normed + normed_each * threads;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const size_t row_stride = (size_t)max_len * d, values = (size_t)batch * row_stride;
    const struct outputs to_x = {{x}, {(size_t)d}, d}, to_hidden = {{hidden}, {(size_t)inner}, inner};
#pragma omp parallel num_threads(threads)
    {
        const int me = omp_get_thread_num(), used = omp_get_num_threads();
        float *my_normed = normed + normed_each * me, *my_scores = scores + scores_each * me;
        /* each thread sets out its own runs before any other may take from them */
        const int widths[4] = {3 * d, d, inner, d};
        for (int l = 0; l < 4 * layers; l++) {
            const long panels = (widths[l % 4] + PANEL_COLUMNS - 1) / PANEL_COLUMNS;
            runs[(size_t)l * used + me].bounds = bounds(panels * me / used, panels * (me + 1) / used);
        }
#pragma omp barrier
        for (int i = 0; i < layers; i++) {
            const struct block_weights *b = blocks + i;
            const struct outputs to_qkv = {{q, b->kv + (size_t)pos * d, b->kv + values + (size_t)pos * d},
                                           {(size_t)d, row_stride, row_stride}, d};
            layer_norm(x, rows, d, b->ln1_weight, b->ln1_bias, eps, my_normed);
            linear_part(bf16, my_normed, rows, d, b->qkv, b->qkv_bias, &to_qkv, 3 * d, STORE, 4 * i, runs, me, used);
#pragma omp barrier
            decode_attention_part(q, rows, heads, head_dim, b->kv, batch, max_len, origin, n, scale, attended,
                                  partials, my_scores, me, used);
            linear_part(bf16, attended, rows, d, b->out, b->out_bias, &to_x, d, ADD, 4 * i + 1, runs, me, used);
#pragma omp barrier
            layer_norm(x, rows, d, b->ln2_weight, b->ln2_bias, eps, my_normed);
            linear_part(bf16, my_normed, rows, d, b->fc, b->fc_bias, &to_hidden, inner, STORE_GELU, 4 * i + 2,
                        runs, me, used);
#pragma omp barrier
            linear_part(bf16, hidden, rows, inner, b->proj, b->proj_bias, &to_x, d, ADD, 4 * i + 3, runs, me, used);
#pragma omp barrier
        }
    }
    free(q);
    free(runs);
    return 0;
}
