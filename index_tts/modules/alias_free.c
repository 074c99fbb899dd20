/* BigVGAN's anti-aliased SnakeBeta (alias_free.py's Activation1d, ratio 2, 12 taps) in one pass per
 * channel: x2 upsampling, SnakeBeta, low-pass and x2 decimation.
 *
 * Why: in torch it is seven ops over tensors twice the signal's length (replicate pads, a grouped
 * transposed convolution, mul, sin, pow, add, a grouped convolution), 109 times per vocoder call;
 * on two Xeon cores they took ~1.5 s of BigVGAN's 2 s in the fast mode, where the convolutions
 * between them run in bf16. Here a channel's signal stays in cache from input to output.
 *
 * The same sums as the torch ops (in another order), fp32 throughout:
 *   up:   u[2j]   = 2 sum_{d=-3..2} x[clamp(j+d)] f[5-2d],  u[2j+1] = 2 sum_{d=-2..3} x[clamp(j+d)] f[6-2d]
 *         (replicate pad 5, conv_transpose1d stride 2, crop 15 a side);
 *   snake: s = u + inv_beta * sin(u * alpha)^2;
 *   down: y[j] = sum_{t=0..11} s[clamp(2j+t-5)] g[t]  (replicate pad 5 | 6, conv1d stride 2). */

#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "vector_math.h"

enum { TAPS = 12, PAD = 3 };

/* sin(v)^2 for 16 lanes: v = n pi + r, |r| <= pi/2 (pi in three parts), sin(v)^2 = sin(r)^2, and
 * sin(r) by its Taylor series to r^13 (error < 1e-9 on that interval). */
static inline f32x16 sin_squared16(f32x16 v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    f32x16 n = (v * 0.318309886183790672f + magic) - magic;
    f32x16 r = v - n * 3.140625f;
    r = r - n * 9.67502593994140625e-4f;
    r = r - n * 1.509957990978376432e-7f;
    f32x16 r2 = r * r;
    f32x16 p = splat(1.0f / 6227020800.0f);
    p = p * r2 - 1.0f / 39916800.0f;
    p = p * r2 + 1.0f / 362880.0f;
    p = p * r2 - 1.0f / 5040.0f;
    p = p * r2 + 1.0f / 120.0f;
    p = p * r2 - 1.0f / 6.0f;
    f32x16 s = r + r * r2 * p;
    return s * s;
}

static void snake(float *u, int n, float alpha, float inv_beta) {
    int i = 0;
    for (; i + LANES <= n; i += LANES) {
        f32x16 v = load16(u + i);
        store16(u + i, v + inv_beta * sin_squared16(v * alpha));
    }
    if (i < n) {
        float tail[LANES] = {0};
        memcpy(tail, u + i, (n - i) * sizeof(float));
        f32x16 v = load16(tail);
        store16(tail, v + inv_beta * sin_squared16(v * alpha));
        memcpy(u + i, tail, (n - i) * sizeof(float));
    }
}

/* One channel: x [t] -> y [t]. work: 3 * (t + 2 * PAD) floats. */
static void channel(const float *x, int t, const float *f, const float *g, float alpha, float inv_beta,
                    float *y, float *work) {
    float *xp = work, *even = xp + t + 2 * PAD, *odd = even + t + 2 * PAD; /* each padded by PAD a side */
    for (int i = -PAD; i < t + PAD; i++) xp[i + PAD] = x[i < 0 ? 0 : i >= t ? t - 1 : i];
    float *e = even + PAD, *o = odd + PAD;
    for (int j = 0; j < t; j++) {
        const float *c = xp + PAD + j;
        float se = 0.f, so = 0.f;
        for (int d = -3; d <= 2; d++) se += c[d] * f[5 - 2 * d];
        for (int d = -2; d <= 3; d++) so += c[d] * f[6 - 2 * d];
        e[j] = 2.f * se;
        o[j] = 2.f * so;
    }
    snake(e, t, alpha, inv_beta);
    snake(o, t, alpha, inv_beta);
    /* s[i] for i < 0 is s[0] (= e[0]), for i >= 2t it is s[2t - 1] (= o[t - 1]), in both halves */
    for (int p = 1; p <= PAD; p++) e[-p] = o[-p] = e[0], e[t - 1 + p] = o[t - 1 + p] = o[t - 1];
    for (int j = 0; j < t; j++) {
        /* s[2j + tap - 5]: odd taps land on even samples e[j + (tap - 5) / 2], even taps on o[j + (tap - 6) / 2] */
        float acc = 0.f;
        for (int tap = 0; tap < TAPS; tap++)
            acc += (tap & 1 ? e[j + (tap - 5) / 2] : o[j + (tap - 6) / 2]) * g[tap];
        y[j] = acc;
    }
}

/* x, y [channels, t]; up, down: the two 12-tap filters; alpha, inv_beta [channels] (already
 * exponentiated where the model stores logs). Returns 0, or -1 if no work memory. */
int alias_free_snake(const float *x, int channels, int t, const float *up, const float *down,
                     const float *alpha, const float *inv_beta, float *y) {
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *work = malloc(3 * ((size_t)t + 2 * PAD) * sizeof(float));
        if (!work) failed = 1;
#pragma omp for schedule(static)
        for (int c = 0; c < channels; c++)
            if (work) channel(x + (size_t)c * t, t, up, down, alpha[c], inv_beta[c], y + (size_t)c * t, work);
        free(work);
    }
    return failed ? -1 : 0;
}
