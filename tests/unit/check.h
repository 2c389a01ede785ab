/*
 * check.h - the unit tests' assertion macros.
 *
 * Each test file defines `static void test_x(void)` functions and a main() that runs them
 * with RUN(test_x); main returns check_summary(). A failed assertion prints the file, line,
 * expression and both values, marks the test failed and returns from the test function.
 */
#ifndef ODS_CHECK_H
#define ODS_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_tests;
static int check_current_failed;

#define CHECK_FAIL_(...)                                                                           \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        check_current_failed = 1;                                                                  \
        return;                                                                                    \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            CHECK_FAIL_("CHECK(%s) failed", #cond);                                                \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            CHECK_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                                 \
    } while (0)

#define CHECK_UINT_EQ(a, b)                                                                        \
    do {                                                                                           \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);             \
        if (a_ != b_)                                                                              \
            CHECK_FAIL_("%s == %s: %llu != %llu", #a, #b, a_, b_);                                 \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            CHECK_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",                  \
                        b_ ? b_ : "(null)");                                                       \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                                            \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            CHECK_FAIL_("%s contains \"%s\": got \"%s\"", #hay, n_, h_ ? h_ : "(null)");           \
    } while (0)

#define CHECK_NULL(p)                                                                              \
    do {                                                                                           \
        if ((p) != NULL)                                                                           \
            CHECK_FAIL_("%s is not NULL", #p);                                                     \
    } while (0)

#define CHECK_NOT_NULL(p)                                                                          \
    do {                                                                                           \
        if ((p) == NULL)                                                                           \
            CHECK_FAIL_("%s is NULL", #p);                                                         \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        check_current_failed = 0;                                                                  \
        check_tests++;                                                                             \
        fn();                                                                                      \
        if (check_current_failed) {                                                                \
            check_failures++;                                                                      \
            fprintf(stderr, "FAIL %s\n", #fn);                                                     \
        } else {                                                                                   \
            fprintf(stderr, "ok   %s\n", #fn);                                                     \
        }                                                                                          \
    } while (0)

static inline int check_summary(void)
{
    fprintf(stderr, "%d tests, %d failed\n", check_tests, check_failures);
    return check_failures ? 1 : 0;
}

#endif
