/* The DiT's elementwise steps between its bf16 linear layers (balanced and fast modes), each in one
 * pass that writes the bf16 the next layer multiplies.
 *
 * Why: in torch each is several ops over [2 x 602, 512..1536] fp32 or bf16 tensors (the adaptive
 * RMSNorm seven, SwiGLU's gate two, RoPE and the head transpose four copies), ~60 ms of the 350 ms
 * a balanced DiT forward took on two Xeon cores, while the bf16 products between them took ~90.
 *
 * The same sums as dit.py's torch ops (in another order), in fp32, rounded once to bf16 at the end:
 *   adaptive_rms: y = scale * (x * rsqrt(mean(x^2) + eps) * g) + shift   (AdaptiveRMSNorm)
 *   swiglu:       y = silu(a) * b                                        (FeedForward's gate)
 *   rope_heads:   q, k rotated pairwise by (cos, sin) of their position, then q, k, v as [B, H, T, Dh]
 *                 (Attention; pair j of a head is (x[2j], x[2j+1]), gpt-fast style). */

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <omp.h>

#include "vector_math.h"

/* x [batches][t][d] fp32, modulation [batches][2d] (scale, then shift), g [d] -> y [batches][t][d]
 * bf16. d a multiple of 16. */
void dit_adaptive_rms_bf16(const float *x, int batches, int t, int d, const float *modulation, const float *g,
                           float eps, uint16_t *y) {
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)batches * t; r++) {
        const float *xr = x + r * d, *scale = modulation + (r / t) * 2 * d, *shift = scale + d;
        f32x16 squares = splat(0.0f);
        for (int i = 0; i < d; i += LANES) {
            f32x16 v = load16(xr + i);
            squares += v * v;
        }
        float inv_rms = 1.0f / sqrtf(sum16(squares) / d + eps);
        for (int i = 0; i < d; i += LANES)
            store_bf16x16(y + r * d + i, load16(scale + i) * (load16(xr + i) * inv_rms * load16(g + i)) + load16(shift + i));
    }
}

/* a, b, y: n bf16 values, n a multiple of 16. */
void dit_swiglu_bf16(const uint16_t *a, const uint16_t *b, long n, uint16_t *y) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i += LANES) {
        f32x16 v = load_bf16x16(a + i);
        store_bf16x16(y + i, v / (1.0f + exp16(-v)) * load_bf16x16(b + i));
    }
}

/* qkv [batches][t][3][heads][dh] bf16 (a linear layer's output), cos, sin [t][dh/2] fp32 ->
 * q [batches][heads][t - queries_from][dh] (positions queries_from..), k, v [batches][heads][t][dh]
 * bf16. dh a multiple of 16 and at most 256. */
void dit_rope_heads_bf16(const uint16_t *qkv, int batches, int t, int heads, int dh, int queries_from,
                         const float *cos, const float *sin, uint16_t *q, uint16_t *k, uint16_t *v) {
    int tq = t - queries_from;
#pragma omp parallel for schedule(static)
    for (long bt = 0; bt < (long)batches * t; bt++) {
        int b = (int)(bt / t), i = (int)(bt % t);
        /* y[2j] = x[2j] c_j - x[2j+1] s_j, y[2j+1] = x[2j+1] c_j + x[2j] s_j: y = x * c2 + swapped(x) * s2 */
        float c2[256], s2[256], x[256], swapped[256];
        for (int j = 0; j < dh / 2; j++) {
            c2[2 * j] = c2[2 * j + 1] = cos[(size_t)i * (dh / 2) + j];
            s2[2 * j] = -sin[(size_t)i * (dh / 2) + j];
            s2[2 * j + 1] = sin[(size_t)i * (dh / 2) + j];
        }
        const uint16_t *row = qkv + bt * 3 * heads * dh;
        for (int h = 0; h < heads; h++) {
            for (int part = 0; part < 2; part++) { /* q, then k */
                if (part == 0 && i < queries_from) continue;
                const uint16_t *src = row + ((size_t)part * heads + h) * dh;
                uint16_t *dst = part == 0 ? q + (((size_t)b * heads + h) * tq + (i - queries_from)) * dh
                                          : k + (((size_t)b * heads + h) * t + i) * dh;
                for (int j = 0; j < dh; j += LANES) store16(x + j, load_bf16x16(src + j));
                for (int j = 0; j < dh; j += 2) swapped[j] = x[j + 1], swapped[j + 1] = x[j];
                for (int j = 0; j < dh; j += LANES)
                    store_bf16x16(dst + j, load16(x + j) * load16(c2 + j) + load16(swapped + j) * load16(s2 + j));
            }
            memcpy(v + (((size_t)b * heads + h) * t + i) * dh, row + ((size_t)2 * heads + h) * dh, dh * sizeof(uint16_t));
        }
    }
}
