/*
 * fetch_token: get a managed-identity access token through mitoken's C API.
 *
 *   fetch_token HOST PORT RESOURCE [CLIENT_ID]
 *
 * Sends one IMDS-style token request to http://HOST:PORT/metadata/identity/oauth2/token
 * (POSIX sockets, poll), retrying as the C API's retry decision says (IMDS guidance: 404, 410,
 * 429, 5xx and connection failures). Prints the access token on stdout; on failure prints the
 * reason (for a service error, IMDS's own error text) on stderr and exits 1 (2 for bad usage).
 *
 * All memory is static: the library allocates nothing. Build (see docs/c-api.md):
 *   cc -Wall -Wextra -Werror -std=c11 -I capi/include examples/c/fetch_token.c \
 *      capi/target/release/libmitoken_capi.a -o fetch_token
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mitoken.h"

/* One attempt may take at most this long (connect, send, receive). */
#define ATTEMPT_TIMEOUT_MS 10000

/* Caller-provided storage: the request goes out of and the response comes into `buffer`. */
static uint8_t buffer[MITOKEN_BUFFER_SIZE_RECOMMENDED];
static mitoken_exchange exchange;
static mitoken_retry retry;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_unix(void) {
    return (uint64_t)time(NULL);
}

static mitoken_str str_of(const char *s) {
    mitoken_str out = {s, strlen(s)};
    return out;
}

/* Waits until `fd` is ready for `events` or `deadline` (ms) passes. 1 ready, 0 timeout, -1 error. */
static int wait_for(int fd, short events, uint64_t deadline) {
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline) {
            return 0;
        }
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n > 0) {
            return 1;
        }
        if (n == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return -1;
        }
    }
}

/* Opens a non-blocking TCP connection. Returns the socket, or -1 (*timed_out says why). */
static int connect_to(const char *host, const char *port, uint64_t deadline, int *timed_out) {
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *addrs = NULL;
    if (getaddrinfo(host, port, &hints, &addrs) != 0) {
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = addrs; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            continue;
        }
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
            close(fd);
            fd = -1;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            break;
        }
        int ready = errno == EINPROGRESS ? wait_for(fd, POLLOUT, deadline) : -1;
        int err = 0;
        socklen_t len = sizeof err;
        if (ready == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
            break;
        }
        *timed_out = ready == 0;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(addrs);
    return fd;
}

/*
 * One attempt: connect, send the request, read the response, parse it into *response.
 * Returns MITOKEN_RESULT_OK with *response set, or fills *failed (how the attempt failed) and
 * returns the mitoken_result of an exchange error, or MITOKEN_RESULT_OK with failed->kind set
 * for a transport failure (then *transport is 1).
 */
static mitoken_result attempt(const char *host, const char *port, const mitoken_request *req,
                              mitoken_response *response, mitoken_attempt *failed,
                              int *transport) {
    *transport = 0;
    mitoken_result r = mitoken_exchange_start(&exchange, req, buffer, sizeof buffer);
    if (r != MITOKEN_RESULT_OK) {
        return r;
    }
    uint64_t deadline = now_ms() + ATTEMPT_TIMEOUT_MS;
    int timed_out = 0;
    int fd = connect_to(host, port, deadline, &timed_out);
    if (fd < 0) {
        failed->kind = timed_out ? MITOKEN_ATTEMPT_TIMEOUT : MITOKEN_ATTEMPT_CONNECT_FAILED;
        *transport = 1;
        return MITOKEN_RESULT_OK;
    }
    failed->kind = MITOKEN_ATTEMPT_IO;
    *transport = 1;

    /* Send the request. */
    for (;;) {
        const uint8_t *data = NULL;
        size_t len = 0;
        r = mitoken_exchange_to_send(&exchange, &data, &len);
        if (r != MITOKEN_RESULT_OK) {
            goto done;
        }
        if (len == 0) {
            break;
        }
        int ready = wait_for(fd, POLLOUT, deadline);
        if (ready <= 0) {
            failed->kind = ready == 0 ? MITOKEN_ATTEMPT_TIMEOUT : MITOKEN_ATTEMPT_IO;
            goto done;
        }
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                continue;
            }
            goto done;
        }
        mitoken_exchange_sent(&exchange, (size_t)n);
    }

    /* Receive until the response is complete. */
    for (;;) {
        uint8_t *free_space = NULL;
        size_t cap = 0;
        r = mitoken_exchange_receive_buf(&exchange, &free_space, &cap);
        if (r != MITOKEN_RESULT_OK) {
            *transport = 0;
            goto done;
        }
        int ready = wait_for(fd, POLLIN, deadline);
        if (ready <= 0) {
            failed->kind = ready == 0 ? MITOKEN_ATTEMPT_TIMEOUT : MITOKEN_ATTEMPT_IO;
            goto done;
        }
        ssize_t n = recv(fd, free_space, cap, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                continue;
            }
            goto done;
        }
        r = n == 0 ? mitoken_exchange_eof(&exchange) : mitoken_exchange_received(&exchange, (size_t)n);
        if (r == MITOKEN_RESULT_COMPLETE) {
            break;
        }
        if (r != MITOKEN_RESULT_NEED_MORE) {
            *transport = 0;
            goto done;
        }
    }
    *transport = 0;
    r = mitoken_exchange_finish(&exchange, now_unix(), response);

done:
    close(fd);
    return r;
}

static void print_exchange_error(mitoken_result r) {
    char text[256];
    size_t len = 0;
    if (mitoken_exchange_error_text(&exchange, text, sizeof text, &len) ==
            MITOKEN_RESULT_OK &&
        len > 0) {
        fprintf(stderr, "fetch_token: %s\n", text);
    } else {
        fprintf(stderr, "fetch_token: %s\n", mitoken_result_text(r));
    }
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: fetch_token HOST PORT RESOURCE [CLIENT_ID]\n");
        return 2;
    }
    const char *host = argv[1];
    const char *port = argv[2];
    char *end = NULL;
    long port_number = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || port_number < 1 || port_number > 65535) {
        fprintf(stderr, "fetch_token: invalid port %s\n", port);
        return 2;
    }

    mitoken_request req;
    memset(&req, 0, sizeof req);
    req.resource = str_of(argv[3]);
    req.endpoint_kind = MITOKEN_ENDPOINT_CUSTOM;
    req.host = str_of(host);
    req.port = (uint16_t)port_number;
    req.style = MITOKEN_STYLE_IMDS;
    if (argc == 5) {
        req.selector_kind = MITOKEN_SELECTOR_CLIENT_ID;
        req.selector = str_of(argv[4]);
    }

    mitoken_retry_policy policy;
    mitoken_retry_policy_imds(&policy);
    mitoken_retry_start(&retry, &policy, now_ms());
    srand((unsigned)(now_ms() ^ (uint64_t)getpid()));

    for (unsigned n = 1;; n++) {
        mitoken_response response;
        mitoken_attempt failed;
        memset(&failed, 0, sizeof failed);
        int transport = 0;
        mitoken_result r = attempt(host, port, &req, &response, &failed, &transport);

        if (r == MITOKEN_RESULT_OK && !transport) {
            if (response.kind == MITOKEN_RESPONSE_KIND_TOKEN) {
                /* The token, and nothing else, on stdout. */
                printf("%.*s\n", (int)response.access_token.len, response.access_token.ptr);
                return 0;
            }
            mitoken_attempt_from_response(&response, &failed);
        } else if (r != MITOKEN_RESULT_OK) {
            if (mitoken_attempt_from_result(r, &failed) != MITOKEN_RESULT_OK) {
                failed.kind = MITOKEN_ATTEMPT_INVALID_RESPONSE;
            }
        }

        mitoken_decision decision;
        mitoken_retry_decide(&retry, now_ms(), &failed, (uint32_t)rand(), &decision);
        if (decision.kind == MITOKEN_DECISION_KIND_RETRY) {
            fprintf(stderr, "fetch_token: attempt %u failed (%s%u); retrying in %llu ms\n", n,
                    failed.kind == MITOKEN_ATTEMPT_STATUS ? "HTTP " : "kind ",
                    failed.kind == MITOKEN_ATTEMPT_STATUS ? failed.status : failed.kind,
                    (unsigned long long)decision.delay_ms);
            uint64_t wake = decision.at_ms;
            while (now_ms() < wake) {
                poll(NULL, 0, (int)(wake - now_ms()));
            }
            continue;
        }

        /* Give up: say why, with the service's own words when there are some. */
        if (r == MITOKEN_RESULT_OK && !transport) {
            fprintf(stderr, "fetch_token: HTTP %u %.*s: %.*s\n", response.status,
                    (int)response.error.len, response.error.ptr,
                    (int)response.error_description.len, response.error_description.ptr);
        } else if (r != MITOKEN_RESULT_OK) {
            print_exchange_error(r);
        } else {
            fprintf(stderr, "fetch_token: cannot reach http://%s:%s\n", host, port);
        }
        char why[256];
        size_t len = 0;
        if (mitoken_retry_error_text(&retry, why, sizeof why, &len) ==
            MITOKEN_RESULT_OK) {
            fprintf(stderr, "fetch_token: %s\n", why);
        }
        return 1;
    }
}
