/* Clocks and RFC 3339 parsing/formatting; see time.h. Calendar arithmetic is Howard
 * Hinnant's days-from-civil algorithm on the proleptic Gregorian calendar, so nothing
 * here depends on the C library's time zone, locale or timegm(). Both directions run per
 * event on the ingest path, hence no printf/scanf. */
#include "core/time.h"

#include <stdbool.h>
#include <time.h>

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY (INT64_C(86400) * US_PER_SEC)

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z: what format can print. */
#define MIN_US (INT64_C(-719162) * US_PER_DAY)
#define MAX_US (INT64_C(2932897) * US_PER_DAY - 1)

int64_t sl_time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * US_PER_SEC + ts.tv_nsec / 1000;
}

int64_t sl_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1-12, d 1-31). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool is_leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* n ASCII digits at s, or -1 if any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i] - '0';
        if (c > 9)
            return -1;
        v = v * 10 + (int)c;
    }
    return v;
}

sl_err sl_time_parse_rfc3339(const char *s, size_t len, int64_t *us_out)
{
    /* "YYYY-MM-DDTHH:MM:SS" then an optional fraction, then the zone. */
    if (!s || len < 20)
        return SL_ERR_INVALID;
    if (s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
        return SL_ERR_INVALID;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return SL_ERR_INVALID;
    int year = digits(s, 4), mon = digits(s + 5, 2), day = digits(s + 8, 2);
    int hour = digits(s + 11, 2), min = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (year < 1 || mon < 1 || mon > 12 || day < 1 ||
        day > (int)days_in_month((unsigned)year, (unsigned)mon))
        return SL_ERR_INVALID;
    if (hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 60)
        return SL_ERR_INVALID;

    size_t i = 19;
    int64_t frac_us = 0;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && (unsigned)((unsigned char)s[i] - '0') <= 9) {
            if (i - start < 6)
                frac_us = frac_us * 10 + (s[i] - '0');
            i++;
        }
        size_t n = i - start;
        if (n < 1 || n > 9)
            return SL_ERR_INVALID;
        for (; n < 6; n++)
            frac_us *= 10;
    }
    if (i >= len)
        return SL_ERR_INVALID;

    int64_t offset_s = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        if (len - i < 6 || s[i + 3] != ':')
            return SL_ERR_INVALID;
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return SL_ERR_INVALID;
        offset_s = (int64_t)(oh * 3600 + om * 60);
        if (s[i] == '-')
            offset_s = -offset_s;
        i += 6;
    } else {
        return SL_ERR_INVALID;
    }
    if (i != len)
        return SL_ERR_INVALID;

    /* A leap second (:60) simply adds up to the first second of the next minute. */
    int64_t secs = days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 + hour * 3600 +
                   min * 60 + sec - offset_s;
    int64_t us = secs * US_PER_SEC + frac_us;
    /* An offset or leap second can carry a year-0001 or year-9999 time out of the range
     * that sl_time_format_rfc3339 (and PostgreSQL/Parquet readers) can hold. */
    if (us < MIN_US || us > MAX_US)
        return SL_ERR_INVALID;
    *us_out = us;
    return SL_OK;
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

static void put_n(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

size_t sl_time_format_rfc3339(int64_t us, char out[SL_TIME_RFC3339_MAX])
{
    if (us < MIN_US)
        us = MIN_US;
    if (us > MAX_US)
        us = MAX_US;
    /* Floor division so times before 1970 land on the right day. */
    int64_t days = us / US_PER_DAY;
    int64_t rem = us % US_PER_DAY;
    if (rem < 0) {
        rem += US_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned sod = (unsigned)(rem / US_PER_SEC);
    unsigned frac = (unsigned)(rem % US_PER_SEC);

    put_n(out, (unsigned)y, 4);
    out[4] = '-';
    put2(out + 5, m);
    out[7] = '-';
    put2(out + 8, d);
    out[10] = 'T';
    put2(out + 11, sod / 3600);
    out[13] = ':';
    put2(out + 14, sod / 60 % 60);
    out[16] = ':';
    put2(out + 17, sod % 60);
    out[19] = '.';
    size_t n;
    if (frac % 1000 == 0) {
        put_n(out + 20, frac / 1000, 3);
        n = 23;
    } else {
        put_n(out + 20, frac, 6);
        n = 26;
    }
    out[n++] = 'Z';
    out[n] = '\0';
    return n;
}
