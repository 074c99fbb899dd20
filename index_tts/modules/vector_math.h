/* Vector helpers shared by our C kernels (GCC vector extensions; -march=native picks the ISA). */

#ifndef INDEX_TTS_VECTOR_MATH_H
#define INDEX_TTS_VECTOR_MATH_H

#include <stdint.h>
#include <string.h>

typedef float f32x16 __attribute__((vector_size(64), aligned(4)));
typedef float f32x8 __attribute__((vector_size(32), aligned(4)));
typedef float f32x4 __attribute__((vector_size(16), aligned(4)));
typedef int32_t i32x16 __attribute__((vector_size(64), aligned(4)));

enum { LANES = 16 };

static inline f32x16 load16(const float *p) {
    f32x16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store16(float *p, f32x16 v) { memcpy(p, &v, sizeof v); }

static inline f32x16 splat(float x) { return (f32x16){0} + x; }

typedef uint32_t u32x16_bits __attribute__((vector_size(64), aligned(4)));
typedef uint16_t u16x16_bits __attribute__((vector_size(32), aligned(2)));

/* 16 bf16 (the upper halves of fp32s) widened exactly. */
static inline f32x16 load_bf16x16(const uint16_t *p) {
    u16x16_bits h;
    memcpy(&h, p, sizeof h);
    u32x16_bits bits = __builtin_convertvector(h, u32x16_bits) << 16;
    f32x16 v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* 16 fp32 rounded to bf16 as torch's .bfloat16() (to nearest even; a NaN stays a quiet NaN), each
 * in the low half of its lane. */
static inline u32x16_bits round_bf16(f32x16 v) {
    u32x16_bits bits;
    memcpy(&bits, &v, sizeof bits);
    u32x16_bits rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    u32x16_bits nan = (u32x16_bits)((bits & 0x7FFFFFFFu) > 0x7F800000u);
    return (rounded & ~nan) | (0x7FC0u & nan);
}

static inline void store_bf16x16(uint16_t *p, f32x16 v) {
    u16x16_bits h = __builtin_convertvector(round_bf16(v), u16x16_bits);
    memcpy(p, &h, sizeof h);
}

#if defined(__has_builtin) /* a separate #if: a preprocessor without it cannot parse the call */
#if __has_builtin(__builtin_shufflevector) /* GCC 12+, clang */
#define HAVE_SHUFFLEVECTOR 1
#endif
#endif

/* ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7)), s_i = v_i + v_(i+8), in registers: through
 * memory, the upper half's load waits on the 64-byte store (store forwarding fails), and the
 * attention sums one of these per head and position. */
static inline float sum16(f32x16 v) {
#ifdef HAVE_SHUFFLEVECTOR
    f32x8 s = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    f32x4 t = __builtin_shufflevector(s, s, 0, 1, 2, 3) + __builtin_shufflevector(s, s, 4, 5, 6, 7);
    return (t[0] + t[1]) + (t[2] + t[3]);
#else
    f32x8 lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
    lo += hi;
    float s[8];
    memcpy(s, &lo, sizeof s);
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
#endif
}

static inline f32x16 max16(f32x16 a, f32x16 b) {
    i32x16 a_less = a < b;
    return (f32x16)(((i32x16)a & ~a_less) | ((i32x16)b & a_less));
}

/* exp(x) as 2^n e^r, |r| <= ln2 / 2, e^r by its Taylor series to r^6 (relative error < 2e-7).
 * x is clamped to [-87, 88]: below, the result would be subnormal (~1e-38 is returned); above,
 * it would overflow. */
static inline f32x16 exp16(f32x16 x) {
    x = max16(x, splat(-87.0f));
    x = -max16(-x, splat(-88.0f));
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    f32x16 t = x * 1.44269504088896341f + magic;
    f32x16 n = t - magic;
    i32x16 scale = ((i32x16)t - (i32x16)splat(magic)) << 23;
    f32x16 r = x - n * 0.693145751953125f - n * 1.428606765330187e-06f; /* ln 2 in two parts */
    f32x16 p = splat(1.0f / 720);
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return (f32x16)((i32x16)p + scale);
}

/* GPT-2's gelu_new, 0.5 x (1 + tanh(u)), u = sqrt(2 / pi) (x + 0.044715 x^3), written as
 * x / (1 + exp(-2u)) (the same function; no cancellation near 0). */
static inline f32x16 gelu_tanh16(f32x16 x) {
    f32x16 u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return x / (1.0f + exp16(-2.0f * u));
}

#endif
