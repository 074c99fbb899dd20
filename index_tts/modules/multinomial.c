/* torch.multinomial(probs, n, replacement=False, generator) for torch's CPU generator, drawing the
 * same numbers at a fraction of the cost.
 *
 * Why: beam sampling draws 6 candidates from the softmax over beams x vocabulary (3 x 8194) every
 * decode step. torch draws an exponential for every entry, 24582 MT19937 pairs and as many
 * log1p's, one at a time under the generator's lock: ~0.47 ms of a ~40 ms step here, for the
 * ~90 entries that top-k/top-p left non-zero. This advances the generator exactly as torch does
 * (two 32-bit outputs per entry) but tempers and transforms only the outputs of non-zero entries.
 *
 * torch's algorithm (aten Distributions.cpp, the no-replacement path): q_i ~ Exp(1), then the n
 * largest probs_i / q_i, in descending order. Its CPU exponential is, per entry, u = the low 53
 * bits of (out1 << 32 | out2) times 2^-53, q = (float)(-log1p(-u)) (checked bit for bit against
 * torch by multinomial.py before use).
 *
 * `state` is torch's CPU generator state as Generator.get_state() gives it: the legacy layout
 * below, MT19937's 624 words stored as uint64. It is updated in place; the caller sets it back. */

#include <math.h>
#include <stdint.h>
#include <string.h>

enum { WORDS = 624, SHIFT = 397 };

struct generator_state {
    uint64_t initial_seed;
    int32_t left; /* outputs left before the next twist, plus one */
    int32_t seeded;
    uint64_t next; /* the next word to output */
    uint64_t words[WORDS];
};

struct mt19937 {
    uint32_t words[WORDS];
    int left, next;
};

static inline uint32_t twisted(uint32_t upper, uint32_t lower, uint32_t far) {
    uint32_t y = (upper & 0x80000000u) | (lower & 0x7fffffffu);
    return far ^ (y >> 1) ^ (-(y & 1u) & 0x9908b0dfu);
}

/* MT19937's recurrence over all 624 words, in the three runs where its indices do not wrap. */
static void twist(uint32_t *w) {
    int i = 0;
    for (; i < WORDS - SHIFT; i++) w[i] = twisted(w[i], w[i + 1], w[i + SHIFT]);
    for (; i < WORDS - 1; i++) w[i] = twisted(w[i], w[i + 1], w[i + SHIFT - WORDS]);
    w[WORDS - 1] = twisted(w[WORDS - 1], w[0], w[SHIFT - 1]);
}

/* The next untempered word (tempering is done only for the words that are used). */
static inline uint32_t raw(struct mt19937 *mt) {
    if (--mt->left == 0) {
        twist(mt->words);
        mt->left = WORDS;
        mt->next = 0;
    }
    return mt->words[mt->next++];
}

static inline uint32_t temper(uint32_t y) {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* out[0..n-1]: the indices torch.multinomial(probs[0..count-1], n) returns, best first; the
 * generator state advanced as torch advances it. Returns 0, or -1 (state untouched) where torch's
 * answer is not certain to be reproduced: a probability that is negative or not finite, fewer than
 * n non-zero entries, equal keys among the best n + 1, or a zero exponential (u = 0, 2^-53 per
 * entry). The caller then asks torch. */
int multinomial_draw(const float *probs, int count, int n, struct generator_state *state, int64_t *out) {
    if (n < 1 || n >= 64 || count < n) return -1;
    struct mt19937 mt = {.left = state->left, .next = (int)state->next};
    for (int i = 0; i < WORDS; i++) mt.words[i] = (uint32_t)state->words[i];
    /* the best n + 1 keys so far, descending (one more than needed, to see a tie at the edge) */
    float best[64];
    int64_t best_index[64];
    int kept = 0, keep = n + 1 < count ? n + 1 : n;
    for (int i = 0; i < count; i++) {
        uint32_t high = raw(&mt), low = raw(&mt);
        float p = probs[i];
        if (!(p >= 0.0f) || isinf(p)) return -1;
        if (p == 0.0f) continue;
        uint64_t bits = ((uint64_t)temper(high) << 32 | temper(low)) & ((1ull << 53) - 1);
        float q = (float)-log1p(-(double)bits * 0x1p-53);
        if (q == 0.0f) return -1;
        float key = p / q;
        if (kept == keep && !(key >= best[kept - 1])) continue;
        int at = kept < keep ? kept++ : kept - 1;
        for (; at > 0 && best[at - 1] < key; at--) {
            best[at] = best[at - 1];
            best_index[at] = best_index[at - 1];
        }
        best[at] = key;
        best_index[at] = i;
    }
    if (kept < n) return -1;
    for (int j = 1; j < kept; j++)
        if (best[j] == best[j - 1]) return -1;
    memcpy(out, best_index, sizeof(int64_t) * n);
    state->left = mt.left;
    state->next = (uint64_t)mt.next;
    for (int i = 0; i < WORDS; i++) state->words[i] = mt.words[i];
    return 0;
}
