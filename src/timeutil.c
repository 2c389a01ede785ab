/* timeutil.c - clocks, ISO-8601 durations and UTC date-times. */
#include "timeutil.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DURATION_MAX_MS (100 * 365 * MS_PER_DAY)

int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * MS_PER_S + ts.tv_nsec / 1000000;
}

int64_t wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* Reads digits at *p into a value in milliseconds units of `unit_ms`; a fraction is only
 * accepted when allow_frac. Returns false on overflow or no digits. */
static bool read_number(const char **p, int64_t unit_ms, bool allow_frac, int64_t *ret_ms,
                        bool *ret_frac)
{
    const char *s = *p;
    int64_t whole = 0;
    bool digits = false;
    while (isdigit((unsigned char)*s)) {
        digits = true;
        if (whole > DURATION_MAX_MS)
            return false;
        whole = whole * 10 + (*s - '0');
        s++;
    }
    int64_t frac_ms = 0;
    *ret_frac = false;
    if ((*s == '.' || *s == ',') && allow_frac) {
        s++;
        if (!isdigit((unsigned char)*s))
            return false;
        int64_t scale = unit_ms / 10;
        while (isdigit((unsigned char)*s)) {
            frac_ms += (*s - '0') * scale;
            scale /= 10;
            s++;
        }
        *ret_frac = true;
        digits = true;
    }
    if (!digits || whole > DURATION_MAX_MS / unit_ms)
        return false;
    *ret_ms = whole * unit_ms + frac_ms;
    *p = s;
    return true;
}

int duration_parse(const char *s, int64_t *ret_ms)
{
    if (strcmp(s, "0") == 0) {
        *ret_ms = 0;
        return 0;
    }
    if (toupper((unsigned char)*s) != 'P')
        return E_INVAL;
    s++;
    /* designators in the order they must appear, date part then time part */
    static const struct {
        char c;
        bool time;
        int64_t ms;
    } parts[] = {{'Y', false, 365 * MS_PER_DAY}, {'M', false, 30 * MS_PER_DAY},
                 {'W', false, 7 * MS_PER_DAY},   {'D', false, MS_PER_DAY},
                 {'H', true, MS_PER_H},          {'M', true, MS_PER_MIN},
                 {'S', true, MS_PER_S}};
    size_t next = 0;
    bool in_time = false, any = false, any_time = false;
    int64_t total = 0;
    while (*s) {
        if (toupper((unsigned char)*s) == 'T') {
            if (in_time)
                return E_INVAL;
            in_time = true;
            while (next < 7 && !parts[next].time)
                next++;
            s++;
            continue;
        }
        /* find how far the number goes to learn its designator */
        const char *q = s;
        while (isdigit((unsigned char)*q) || *q == '.' || *q == ',')
            q++;
        char d = (char)toupper((unsigned char)*q);
        size_t k = next;
        while (k < 7 && !(parts[k].c == d && parts[k].time == in_time))
            k++;
        if (k == 7)
            return E_INVAL;
        int64_t v;
        bool frac;
        if (!read_number(&s, parts[k].ms, parts[k].c == 'S', &v, &frac) || s != q)
            return E_INVAL;
        s++; /* designator */
        if (frac && *s)
            return E_INVAL; /* a fraction only on the last part */
        total += v;
        if (total > DURATION_MAX_MS)
            return E_INVAL;
        any = true;
        any_time |= in_time;
        next = k + 1;
    }
    if (!any || (in_time && !any_time))
        return E_INVAL;
    *ret_ms = total;
    return 0;
}

void duration_format(int64_t ms, char *out, size_t cap)
{
    if (ms < 0)
        ms = 0;
    if (ms < MS_PER_S) {
        snprintf(out, cap, "%lld ms", (long long)ms);
    } else if (ms < MS_PER_MIN) {
        snprintf(out, cap, "%lld s", (long long)(ms / MS_PER_S));
    } else if (ms < MS_PER_H) {
        snprintf(out, cap, "%lld min", (long long)(ms / MS_PER_MIN));
    } else if (ms < MS_PER_DAY) {
        long long h = ms / MS_PER_H, m = ms % MS_PER_H / MS_PER_MIN;
        if (m)
            snprintf(out, cap, "%lld h %lld min", h, m);
        else
            snprintf(out, cap, "%lld h", h);
    } else {
        long long d = ms / MS_PER_DAY, h = ms % MS_PER_DAY / MS_PER_H;
        if (h)
            snprintf(out, cap, "%lld day%s %lld h", d, d == 1 ? "" : "s", h);
        else
            snprintf(out, cap, "%lld day%s", d, d == 1 ? "" : "s");
    }
}

void utc_format(int64_t epoch_s, int iso, char *out, size_t cap)
{
    time_t t = (time_t)epoch_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, cap, "?");
        return;
    }
    strftime(out, cap, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S", &tm);
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool digits(const char *s, int n, int *ret)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return true;
}

int utc_parse(const char *s, int64_t *ret_epoch_s)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    if (strlen(s) < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d))
        return E_INVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
        return E_INVAL;
    const char *p = s + 10;
    int64_t offset = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &mi))
            return E_INVAL;
        p += 5;
        if (*p == ':') {
            if (!digits(p + 1, 2, &se))
                return E_INVAL;
            p += 3;
            if (*p == '.' || *p == ',') {
                p++;
                if (!isdigit((unsigned char)*p))
                    return E_INVAL;
                while (isdigit((unsigned char)*p))
                    p++;
            }
        }
        if (h > 23 || mi > 59 || se > 60)
            return E_INVAL;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            int sign = *p == '-' ? -1 : 1;
            if (!digits(p + 1, 2, &oh))
                return E_INVAL;
            p += 3;
            if (*p == ':')
                p++;
            if (!digits(p, 2, &om))
                return E_INVAL;
            p += 2;
            offset = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p)
        return E_INVAL;
    *ret_epoch_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    return 0;
}
