/* Beam sampling's score processing (repetition penalty, temperature, top-k, top-p; HF's order) for
 * a few rows of the vocabulary, with the same float results as generation.process_scores' torch
 * ops, except the one softmax, which stays torch's.
 *
 * Why: at 3 x 8194 scores each of those ~25 torch ops costs 10-30 us, cold after the weights have
 * streamed through the caches: ~0.8 ms of a ~40 ms decode step. Their arithmetic is elementwise
 * IEEE operations (x * p, x / p, x / T: torch divides, it does not multiply by a reciprocal),
 * comparisons, and a cumulative sum that torch accumulates in double; all reproducible here
 * exactly (score_filter.py checks them against torch before use).
 *
 * score_filter_top_k: scores = masked top-k of the penalised, tempered logprobs. Also the top k
 * (descending) and, where they are distinct, finite and the only finite scores left, the
 * ascending row torch.sort would give (-inf, then the top k reversed) for top-p's softmax.
 * score_filter_top_p: from that row's softmax, the top-p drop, applied to scores in place. */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Returns 1 (the top k are distinct and alone: `ascending` is written), 0 (not: top-p must sort),
 * or -1 (a NaN: torch's topk orders NaN first; left to torch). */
int score_filter_top_k(const float *logprobs, const uint8_t *seen, int rows, int vocab, float penalty,
                       float temperature, int k, float *scores, float *top_values, int64_t *top_indices,
                       float *ascending) {
    int alone = 1;
    for (int r = 0; r < rows; r++) {
        const float *in = logprobs + (size_t)r * vocab;
        float *out = scores + (size_t)r * vocab, *values = top_values + (size_t)r * k;
        int64_t *indices = top_indices + (size_t)r * k;
        int held = 0;
        for (int i = 0; i < vocab; i++) {
            float x = in[i];
            if (seen[(size_t)r * vocab + i]) x = x < 0 ? x * penalty : x / penalty;
            x = x / temperature;
            if (isnan(x)) return -1;
            out[i] = x;
            if (held == k && !(x > values[k - 1])) continue;
            int at = held < k ? held++ : k - 1; /* insert x, dropping the smallest when full */
            for (; at > 0 && x > values[at - 1]; at--) {
                values[at] = values[at - 1];
                indices[at] = indices[at - 1];
            }
            values[at] = x;
            indices[at] = i;
        }
        const float threshold = values[k - 1];
        int kept = 0;
        for (int i = 0; i < vocab; i++) {
            if (out[i] < threshold)
                out[i] = -INFINITY;
            else
                kept += isfinite(out[i]) != 0;
        }
        for (int j = 0; j < k; j++) alone &= isfinite(values[j]) && (j == 0 || values[j] < values[j - 1]);
        alone &= kept == k;
    }
    if (!alone) return 0;
    for (int r = 0; r < rows; r++) {
        float *row = ascending + (size_t)r * vocab;
        for (int i = 0; i < vocab - k; i++) row[i] = -INFINITY;
        for (int j = 0; j < k; j++) row[vocab - k + j] = top_values[(size_t)r * k + k - 1 - j];
    }
    return 1;
}

/* probs: softmax of `ascending` [rows, vocab]. Drops (to -inf in scores) the low tail whose
 * cumulative probability, summed in double and rounded to float as torch's cumsum does, is
 * <= limit (1 - top_p as a float), keeping the top min_keep. */
void score_filter_top_p(const float *probs, int rows, int vocab, int k, float limit, int min_keep,
                        const int64_t *top_indices, float *scores) {
    for (int r = 0; r < rows; r++) {
        const float *p = probs + (size_t)r * vocab + (vocab - k); /* the -inf entries' zeros add nothing */
        double cumulative = 0.0;
        for (int j = 0; j < k; j++) {
            cumulative += p[j];
            if ((float)cumulative <= limit && j < k - min_keep)
                scores[(size_t)r * vocab + top_indices[(size_t)r * k + k - 1 - j]] = -INFINITY;
        }
    }
}
