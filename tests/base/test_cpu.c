/* The CPU probe (common/base/cpu.c) against the kernel's own reading of
 * CPUID: /proc/cpuinfo lists avx512_bf16 exactly when the CPU has it and
 * the kernel enabled AVX-512; and TLSWEEP_CPU_NO_BF16=1 hides it. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cpu.h"

/* 1 when /proc/cpuinfo's first flags line names flag, 0 when it does not,
 * -1 when there is no such file (not Linux). */
static int cpuinfo_has(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return -1;
    char line[8192];
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        found = 0;
        for (char *save = NULL, *w = strtok_r(strchr(line, ':') + 1, " \t\n", &save); w;
             w = strtok_r(NULL, " \t\n", &save))
            if (!strcmp(w, flag))
                found = 1;
    }
    fclose(f);
    return found;
}

static void test_bf16_as_the_kernel_sees_it(void **st)
{
    (void)st;
    unsetenv("TLSWEEP_CPU_NO_BF16");
    int want = cpuinfo_has("avx512_bf16");
    if (want < 0)
        skip();
    print_message("avx512_bf16: %s\n", want ? "yes" : "no");
    assert_int_equal(tl_cpu_has_avx512_bf16(), want);
}

static void test_bf16_hidden_for_tests(void **st)
{
    (void)st;
    setenv("TLSWEEP_CPU_NO_BF16", "1", 1);
    assert_int_equal(tl_cpu_has_avx512_bf16(), 0);
    /* only "1" hides it */
    setenv("TLSWEEP_CPU_NO_BF16", "0", 1);
    int shown = tl_cpu_has_avx512_bf16();
    unsetenv("TLSWEEP_CPU_NO_BF16");
    assert_int_equal(shown, tl_cpu_has_avx512_bf16());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_as_the_kernel_sees_it),
        cmocka_unit_test(test_bf16_hidden_for_tests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
