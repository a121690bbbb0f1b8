/* GPU probe (not run by cargo): does the CUDA runtime accept a fatbin container with no entries
 * (fat_size 0), the way it accepts one with nothing for this GPU?
 *
 * Registers one hand-built container through cudart's own registration entry points (what
 * nvcc-generated code calls from a library constructor), registers a kernel in it, creates the
 * context, launches the kernel, and then checks the context still works.
 *
 *   cc -O1 -o empty_container empty_container.c -ldl
 *   CUDA_MODULE_LOADING=EAGER ./empty_container /path/to/libcudart.so.13 empty|other
 *
 * `other` is the control: a container whose only entry is an sm_120a cubin, which a 9.0 GPU
 * cannot load (ORT 1.31.1's CUDA provider has 9 of these and works on the H100). Printed lines
 * are `step: code name`; the process exits 0 when it got to the end. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { unsigned x, y, z; } dim3;
typedef int (*rt_int_fn)(void);
typedef int (*free_fn)(void *);
typedef int (*malloc_fn)(void **, size_t);
typedef const char *(*errstr_fn)(int);
typedef void **(*reg_fatbin_fn)(void *);
typedef void (*reg_end_fn)(void **);
typedef void (*reg_func_fn)(void **, const char *, char *, const char *, int, void *, void *,
                            void *, void *, int *);
typedef int (*launch_fn)(const void *, dim3, dim3, void **, size_t, void *);

struct wrapper { int magic; int version; const void *data; void *filename; };

static uint64_t blob[64] __attribute__((aligned(16)));

static void host_stub(void) {}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s LIBCUDART empty|other\n", argv[0]); return 2; }
    void *rt = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (!rt) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
    reg_fatbin_fn reg = (reg_fatbin_fn)dlsym(rt, "__cudaRegisterFatBinary");
    reg_end_fn reg_end = (reg_end_fn)dlsym(rt, "__cudaRegisterFatBinaryEnd");
    reg_func_fn reg_func = (reg_func_fn)dlsym(rt, "__cudaRegisterFunction");
    free_fn cfree = (free_fn)dlsym(rt, "cudaFree");
    malloc_fn cmalloc = (malloc_fn)dlsym(rt, "cudaMalloc");
    rt_int_fn last = (rt_int_fn)dlsym(rt, "cudaGetLastError");
    rt_int_fn sync = (rt_int_fn)dlsym(rt, "cudaDeviceSynchronize");
    errstr_fn name = (errstr_fn)dlsym(rt, "cudaGetErrorName");
    launch_fn launch = (launch_fn)dlsym(rt, "cudaLaunchKernel");
    if (!reg || !reg_func || !cfree || !cmalloc || !last || !name || !launch || !sync) {
        fprintf(stderr, "missing cudart symbols\n");
        return 2;
    }

    unsigned char *b = (unsigned char *)blob;
    uint32_t magic = 0xBA55ED50u; uint16_t ver = 1, hs = 16; uint64_t fat_size = 0;
    memcpy(b, &magic, 4); memcpy(b + 4, &ver, 2); memcpy(b + 6, &hs, 2);
    if (strcmp(argv[2], "other") == 0) {
        /* One ELF entry, header 64 bytes, payload 64 bytes starting with \x7fELF: sm_120a. */
        unsigned char *e = b + 16;
        uint16_t kind = 2, ever = 0x0101; uint32_t ehs = 64; uint64_t psize = 64;
        uint16_t minor = 8, major = 1; uint32_t arch = 120; uint64_t flags = 0x11 | 0x100000;
        memcpy(e, &kind, 2); memcpy(e + 2, &ever, 2); memcpy(e + 4, &ehs, 4);
        memcpy(e + 8, &psize, 8); memcpy(e + 0x18, &minor, 2); memcpy(e + 0x1A, &major, 2);
        memcpy(e + 0x1C, &arch, 4); memcpy(e + 0x28, &flags, 8); memcpy(e + 0x38, &psize, 8);
        memcpy(e + 64, "\x7f" "ELF", 4);
        fat_size = 128;
    } else if (strcmp(argv[2], "empty") != 0) {
        fprintf(stderr, "mode must be empty or other\n");
        return 2;
    }
    memcpy(b + 8, &fat_size, 8);

    struct wrapper w = {0x466243B1, 1, blob, NULL};
    void **h = reg(&w);
    printf("register fatbin (%s, fat_size %llu): handle %s\n", argv[2],
           (unsigned long long)fat_size, h ? "ok" : "NULL");
    reg_func(h, (const char *)host_stub, (char *)"probe_kernel", "probe_kernel", -1, NULL, NULL,
             NULL, NULL, NULL);
    if (reg_end) reg_end(h);

    int rc = cfree(NULL);
    printf("context (cudaFree(0)): %d %s\n", rc, name(rc));
    dim3 one = {1, 1, 1};
    rc = launch((const void *)host_stub, one, one, NULL, 0, NULL);
    printf("launch probe_kernel: %d %s\n", rc, name(rc));
    rc = last();
    printf("cudaGetLastError: %d %s\n", rc, name(rc));
    void *p = NULL;
    rc = cmalloc(&p, 1 << 20);
    printf("cudaMalloc after: %d %s\n", rc, name(rc));
    rc = sync();
    printf("cudaDeviceSynchronize: %d %s\n", rc, name(rc));
    printf("end\n");
    return 0;
}
