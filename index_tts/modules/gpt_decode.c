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
 * The weights are 64-column panels, fp32 or bf16 (the fast mode); everything else is fp32.
 * origin: the cache's row for each (row, position), as decode_attention.c. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

enum { STORE = 0, STORE_GELU = 1, ADD = 2 }; /* as panel_linear.c */

void panel_linear_f32(const float *x, int m, int k, const float *w, const float *bias, float *y, int n, int epilogue);
void panel_linear_bf16(const float *x, int m, int k, const void *w, const float *bias, float *y, int n, int epilogue);
int decode_attention(const float *qkv, int rows, int heads, int head_dim, float *kv, int batch, int max_len,
                     const int32_t *origin, int pos, int n, float scale, float *out);

struct block_weights {
    const float *ln1_weight, *ln1_bias, *ln2_weight, *ln2_bias;
    const void *qkv, *out, *fc, *proj; /* panels */
    const float *qkv_bias, *out_bias, *fc_bias, *proj_bias;
    float *kv; /* this layer's cache [2, batch, max_len, d] */
};

static void layer_norm(const float *x, int rows, int d, const float *weight, const float *bias, float eps, float *y) {
    for (int r = 0; r < rows; r++, x += d, y += d) {
        float mean = 0.0f, var = 0.0f;
        for (int i = 0; i < d; i++) mean += x[i];
        mean /= d;
        for (int i = 0; i < d; i++) var += (x[i] - mean) * (x[i] - mean);
        float inv = 1.0f / sqrtf(var / d + eps);
        for (int i = 0; i < d; i++) y[i] = (x[i] - mean) * inv * weight[i] + bias[i];
    }
}

static void linear(int bf16, const float *x, int m, int k, const void *w, const float *bias, float *y, int n,
                   int epilogue) {
    if (bf16)
        panel_linear_bf16(x, m, k, w, bias, y, n, epilogue);
    else
        panel_linear_f32(x, m, k, w, bias, y, n, epilogue);
}

/* x [rows, d] through `layers` blocks. Returns 0, or -1 (attention's head_dim, or out of memory). */
int gpt2_decode_blocks(float *x, int rows, int layers, const struct block_weights *blocks, int d, int heads,
                       int inner, int bf16, float eps, int batch, int max_len, const int32_t *origin, int pos,
                       int n) {
    float *normed = malloc(sizeof(float) * (size_t)rows * (5 * d + inner));
    if (!normed) return -1;
    float *qkv = normed + (size_t)rows * d, *attended = qkv + (size_t)rows * 3 * d, *hidden = attended + (size_t)rows * d;
    const int head_dim = d / heads;
    int failed = 0;
    for (int i = 0; i < layers && !failed; i++) {
        const struct block_weights *b = blocks + i;
        layer_norm(x, rows, d, b->ln1_weight, b->ln1_bias, eps, normed);
        linear(bf16, normed, rows, d, b->qkv, b->qkv_bias, qkv, 3 * d, STORE);
        failed = decode_attention(qkv, rows, heads, head_dim, b->kv, batch, max_len, origin, pos, n,
                                  1.0f / sqrtf((float)head_dim), attended);
        linear(bf16, attended, rows, d, b->out, b->out_bias, x, d, ADD);
        layer_norm(x, rows, d, b->ln2_weight, b->ln2_bias, eps, normed);
        linear(bf16, normed, rows, d, b->fc, b->fc_bias, hidden, inner, STORE_GELU);
        linear(bf16, hidden, rows, inner, b->proj, b->proj_bias, x, d, ADD);
    }
    free(normed);
    return failed;
}
