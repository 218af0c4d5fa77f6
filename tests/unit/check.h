/* check.h — the unit tests' assertion macros: each failed check prints
 * FILE:LINE and what differed, the run goes on, and check_summary() prints
 * "N passed, N failed" and gives the exit code. */
#ifndef RAANA_TEST_CHECK_H
#define RAANA_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond)                                                                                  \
            check_passed++;                                                                        \
        else {                                                                                     \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        if (check_a_ == check_b_)                                                                  \
            check_passed++;                                                                        \
        else {                                                                                     \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    check_a_, check_b_);                                                           \
        }                                                                                          \
    } while (0)

/* |a - b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                     \
        double check_s_ = fabs(check_b_) > 1 ? fabs(check_b_) : 1;                                 \
        if (fabs(check_a_ - check_b_) <= (tol)*check_s_)                                           \
            check_passed++;                                                                        \
        else {                                                                                     \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s ~ %s failed: %.9g vs %.9g (tol %g)\n", __FILE__, __LINE__,  \
                    #a, #b, check_a_, check_b_, (double)(tol));                                    \
        }                                                                                          \
    } while (0)

/* The error message contains every one of the given substrings. */
#define CHECK_MSG(err, ...)                                                                        \
    do {                                                                                           \
        const char *check_subs_[] = {__VA_ARGS__};                                                 \
        int check_ok_ = 1;                                                                         \
        for (size_t check_i_ = 0; check_i_ < sizeof check_subs_ / sizeof check_subs_[0];           \
             check_i_++)                                                                           \
            if (!strstr((err).msg, check_subs_[check_i_]))                                         \
                check_ok_ = 0;                                                                     \
        if (check_ok_)                                                                             \
            check_passed++;                                                                        \
        else {                                                                                     \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: message lacks an expected part: \"%s\"\n", __FILE__, __LINE__, \
                    (err).msg);                                                                    \
        }                                                                                          \
    } while (0)

static inline int check_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
