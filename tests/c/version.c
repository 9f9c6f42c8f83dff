/* The version macros of the header agree with the library at run time. */
#include <stdio.h>
#include <string.h>
#include "losskit.h"

int main(void) {
    char want[64];
    if (lk_version_number() != LK_VERSION_NUMBER) {
        fprintf(stderr, "header %u != library %u\n", (unsigned)LK_VERSION_NUMBER, lk_version_number());
        return 1;
    }
    if (LK_VERSION_NUMBER != LK_VERSION_MAJOR * 1000000u + LK_VERSION_MINOR * 1000u + LK_VERSION_PATCH) {
        fprintf(stderr, "LK_VERSION_NUMBER arithmetic is wrong\n");
        return 1;
    }
    snprintf(want, sizeof want, "%u.%u.%u", (unsigned)LK_VERSION_MAJOR, (unsigned)LK_VERSION_MINOR,
             (unsigned)LK_VERSION_PATCH);
    if (strcmp(lk_version_string(), want) != 0) {
        fprintf(stderr, "version string %s != %s\n", lk_version_string(), want);
        return 1;
    }
    if (lk_abi_version() != LK_ABI_VERSION) {
        fprintf(stderr, "ABI version mismatch\n");
        return 1;
    }
    printf("ok %s\n", lk_version_string());
    return 0;
}
