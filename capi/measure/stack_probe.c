/*
 * stack_probe: peak stack of one token exchange through mitoken's C API.
 *
 *   stack_probe RESPONSE_FILE
 *
 * RESPONSE_FILE holds a complete HTTP response captured from a token endpoint (`cargo xtask
 * capi` records one from `mitoken emulate`). The probe runs the whole client flow on a thread
 * whose stack is a static array it paints with 0xA5 below the thread's entry frame: write the
 * request, "send" it, feed the response in 1448-byte segments (one TCP MSS) through
 * receive_buf/received, finish, read the token, then the retry decision and the error texts.
 * The lowest byte no longer 0xA5 is the high-water mark; the distance from the entry frame
 * is the stack the flow used (the library plus the thin C caller, memcpy included). The
 * result is exact for this build and these inputs; the library has no recursion, so other
 * responses of similar size take the same paths.
 *
 * A second run measures the cache the same way: mitoken_cache_init, _insert of the
 * exchange's token, _get.
 *
 * Prints `stack_bytes=N cache_stack_bytes=C token_bytes=M` and exits 0, or exits 1 if a flow
 * did not yield a token.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mitoken.h"

#define STACK_BYTES (256 * 1024)
#define PAINT 0xA5
/* Left unpainted just below the entry frame, for memset's own frame. */
#define MARGIN 512
#define SEGMENT 1448

static _Alignas(16) uint8_t stack[STACK_BYTES];
static uint8_t response_bytes[64 * 1024];
static size_t response_len;
static uint8_t buffer[MITOKEN_BUFFER_SIZE_RECOMMENDED];
static mitoken_exchange exchange;
static mitoken_retry retry;
static mitoken_cache cache;
static mitoken_request req;

struct result {
    int (*flow)(size_t *);
    size_t stack_bytes;
    size_t token_bytes;
    int ok;
};

/* The flow under measurement. Not inlined, so it runs below the painted line. */
__attribute__((noinline)) static int flow(size_t *token_bytes) {
    static const char host[] = "127.0.0.1";
    static const char resource[] = "https://management.azure.com/";
    memset(&req, 0, sizeof req);
    req.resource.ptr = resource;
    req.resource.len = sizeof resource - 1;
    req.endpoint_kind = MITOKEN_ENDPOINT_CUSTOM;
    req.host.ptr = host;
    req.host.len = sizeof host - 1;
    req.port = 8080;

    mitoken_retry_policy policy;
    if (mitoken_retry_policy_imds(&policy) != MITOKEN_RESULT_OK ||
        mitoken_retry_start(&retry, &policy, 0) != MITOKEN_RESULT_OK) {
        return 0;
    }
    if (mitoken_exchange_start(&exchange, &req, buffer, sizeof buffer) != MITOKEN_RESULT_OK) {
        return 0;
    }
    const uint8_t *out = NULL;
    size_t out_len = 0;
    if (mitoken_exchange_to_send(&exchange, &out, &out_len) != MITOKEN_RESULT_OK ||
        mitoken_exchange_sent(&exchange, out_len) != MITOKEN_RESULT_OK) {
        return 0;
    }
    size_t fed = 0;
    mitoken_result r = MITOKEN_RESULT_NEED_MORE;
    while (r == MITOKEN_RESULT_NEED_MORE && fed < response_len) {
        uint8_t *free_space = NULL;
        size_t cap = 0;
        if (mitoken_exchange_receive_buf(&exchange, &free_space, &cap) != MITOKEN_RESULT_OK) {
            return 0;
        }
        size_t n = response_len - fed;
        n = n < SEGMENT ? n : SEGMENT;
        n = n < cap ? n : cap;
        memcpy(free_space, response_bytes + fed, n);
        fed += n;
        r = mitoken_exchange_received(&exchange, n);
    }
    if (r == MITOKEN_RESULT_NEED_MORE) {
        r = mitoken_exchange_eof(&exchange);
    }
    mitoken_response response;
    if (r != MITOKEN_RESULT_COMPLETE ||
        mitoken_exchange_finish(&exchange, 1700000000, &response) != MITOKEN_RESULT_OK ||
        response.kind != MITOKEN_RESPONSE_KIND_TOKEN) {
        return 0;
    }
    *token_bytes = response.access_token.len;

    /* The retry path a failed attempt takes: a 503, then a 400 that gives up. */
    mitoken_attempt attempt = {MITOKEN_ATTEMPT_STATUS, 503, true, 1};
    mitoken_decision decision;
    if (mitoken_retry_decide(&retry, 100, &attempt, 12345, &decision) != MITOKEN_RESULT_OK ||
        decision.kind != MITOKEN_DECISION_KIND_RETRY) {
        return 0;
    }
    attempt.status = 400;
    char text[256];
    size_t len = 0;
    if (mitoken_retry_decide(&retry, 2000, &attempt, 1, &decision) != MITOKEN_RESULT_OK ||
        decision.kind != MITOKEN_DECISION_KIND_GIVE_UP ||
        mitoken_retry_error_text(&retry, text, sizeof text, &len) != MITOKEN_RESULT_OK ||
        mitoken_exchange_error_text(&exchange, text, sizeof text, &len) != MITOKEN_RESULT_OK) {
        return 0;
    }
    return 1;
}

/* The cache on top: initialise it, store the token of the finished exchange, look it up. */
__attribute__((noinline)) static int cache_flow(size_t *token_bytes) {
    mitoken_cached_token cached;
    if (mitoken_cache_init(&cache) != MITOKEN_RESULT_OK ||
        mitoken_cache_insert(&cache, &req, &exchange, 1700000000000u) != MITOKEN_RESULT_OK ||
        mitoken_cache_get(&cache, &req, 1700000001000u, &cached) != MITOKEN_RESULT_OK) {
        return 0;
    }
    *token_bytes = cached.access_token.len;
    return 1;
}

static void *measure(void *arg) {
    struct result *res = arg;
    volatile uint8_t entry = 0;
    uintptr_t top = (uintptr_t)&entry;
    uintptr_t base = (uintptr_t)stack;
    memset(stack, PAINT, (size_t)(top - MARGIN - base));
    res->ok = res->flow(&res->token_bytes);
    uintptr_t lowest = base;
    while (lowest < top && *(volatile uint8_t *)lowest == PAINT) {
        lowest++;
    }
    res->stack_bytes = (size_t)(top - lowest);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: stack_probe RESPONSE_FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 2;
    }
    response_len = fread(response_bytes, 1, sizeof response_bytes, f);
    fclose(f);

    struct result exchange_run = {flow, 0, 0, 0};
    struct result cache_run = {cache_flow, 0, 0, 0};
    struct result *runs[] = {&exchange_run, &cache_run};
    for (size_t i = 0; i < 2; i++) {
        pthread_attr_t attr;
        pthread_t thread;
        if (pthread_attr_init(&attr) != 0 ||
            pthread_attr_setstack(&attr, stack, sizeof stack) != 0 ||
            pthread_create(&thread, &attr, measure, runs[i]) != 0 ||
            pthread_join(thread, NULL) != 0) {
            fprintf(stderr, "stack_probe: cannot run the probe thread\n");
            return 2;
        }
        pthread_attr_destroy(&attr);
        if (!runs[i]->ok) {
            fprintf(stderr, "stack_probe: flow %zu did not yield a token\n", i);
            return 1;
        }
    }
    printf("stack_bytes=%zu cache_stack_bytes=%zu token_bytes=%zu\n", exchange_run.stack_bytes,
           cache_run.stack_bytes, exchange_run.token_bytes);
    return 0;
}
