/* panel_linear.c's entry points for callers already inside a parallel region (gpt_decode.c). */

#ifndef INDEX_TTS_PANEL_LINEAR_H
#define INDEX_TTS_PANEL_LINEAR_H

#include <stddef.h>
#include <stdint.h>

/* What happens to each output after the sum: y = sum + bias, y = gelu_new(sum + bias) (the GPT's
 * MLP), or y += sum + bias (a residual connection, in place). */
enum { STORE = 0, STORE_GELU = 1, ADD = 2 };

/* Where the outputs go: the columns in sections of `width` (a multiple of 16 where there is more
 * than one), section s at y[s] with rows ldy[s] floats apart. A plain linear layer has one
 * section; the GPT's c_attn has three, so that its keys and values land in the cache (q | k | v). */
struct outputs {
    float *y[3];
    size_t ldy[3];
    int width;
};

/* Sets *flag, unless another thread did first (then 0); acquire and release, so what the caller
 * read before stays before, and what it writes after stays after. */
static inline int first_to_set(unsigned char *flag) {
    unsigned char clear = 0;
    return __atomic_compare_exchange_n(flag, &clear, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Panel p alone, its outputs stored only if *gate was clear, which this call then sets (a panel
 * two threads may compute: only the first to finish writes it; a NULL gate always stores);
 * returns whether it stored. */
int panel_linear_f32_panel_gated(const float *x, int m, int k, const float *w, const float *bias,
                                 const struct outputs *out, int n, int epilogue, int p, unsigned char *gate);
int panel_linear_bf16_panel_gated(const float *x, int m, int k, const uint16_t *w, const float *bias,
                                  const struct outputs *out, int n, int epilogue, int p, unsigned char *gate);

enum { PANEL_COLUMNS = 64 };

#endif
