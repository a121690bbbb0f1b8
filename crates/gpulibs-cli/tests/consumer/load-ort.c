/* Loads ONNX Runtime from the path in argv[1] (as an app given ORT_DYLIB_PATH does), asks it
 * for its API and version through OrtGetApiBase, and dlopens each further argument by name
 * (found through LD_LIBRARY_PATH). Prints "onnxruntime <version>"; exits 1 on any failure. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

typedef struct OrtApiBase {
    const void *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} OrtApiBase;

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: load-ort LIBRARY [NAME...]\n");
        return 2;
    }
    void *ort = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!ort) {
        fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
        return 1;
    }
    const OrtApiBase *(*get_base)(void) = (const OrtApiBase *(*)(void))dlsym(ort, "OrtGetApiBase");
    if (!get_base) {
        fprintf(stderr, "no OrtGetApiBase in %s\n", argv[1]);
        return 1;
    }
    const OrtApiBase *base = get_base();
    /* API version 1 is served by every release. */
    if (!base || !base->GetApi(1)) {
        fprintf(stderr, "OrtGetApiBase()->GetApi(1) failed\n");
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        if (!dlopen(argv[i], RTLD_NOW | RTLD_GLOBAL)) {
            fprintf(stderr, "dlopen %s: %s\n", argv[i], dlerror());
            return 1;
        }
    }
    printf("onnxruntime %s\n", base->GetVersionString());
    return 0;
}
