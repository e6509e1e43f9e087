/*
 * index_goodfit.c: CARVE_GOOD_FIT, the TLSF-class segregated good fit.
 *
 * The request is rounded up to the next class boundary, so the head of the
 * first non-empty class at or above it fits without looking at any other
 * block: constant time, and the block picked is at most 1/16 octave larger
 * than the best fit in that class (Masmano et al., TLSF, 2004).  When that
 * search finds nothing, the request's own class may still hold a block that
 * fits; it is scanned before the heap reports ENOMEM, so the policy never
 * fails while a fitting block exists.
 */
#include "index.h"

/* The search's second half, after goodfit_head_fit (index.h, inline in
 * index_find) found nothing: the request's own class. */
ref goodfit_find_own(const carve_heap *h, uint64_t g, bool *corrupt)
{
    unsigned want = class_of(class_round_up(g));
    unsigned own = class_of(g);
    if (own != want && own / SL_COUNT < h->fl_count && h->heads[own]) {
        return list_first_fit(h, own, g, corrupt);
    }
    return 0;
}
