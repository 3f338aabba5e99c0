/* The event module's only C++: parses a request body with simdjson's DOM parser and hands
 * its tape to the C code through json.h. One parser per thread, reused, so a request costs
 * no allocation once the thread has seen a body of that size; the body is copied into a
 * per-thread buffer with the SIMDJSON_PADDING that simdjson reads past the end. */
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include <simdjson.h>

extern "C" {
#include "event/json.h"
}

namespace
{

/* Capacity allocated at a thread's first parse; simdjson grows it for larger bodies
 * (keeping SL__JSON_MAX_DEPTH). A parser takes about 15 bytes per byte of capacity, so
 * one grown past retain_max is dropped at the next body that fits in less: a thread
 * holds a large parser only while it keeps parsing large bodies. */
constexpr size_t initial_capacity = 64 * 1024;
constexpr size_t retain_max = 1024 * 1024;

struct thread_parser {
    simdjson::dom::parser parser;
    char *buf = nullptr; /* the padded copy of the body */
    size_t buf_cap = 0;
    bool ready = false;
    ~thread_parser()
    {
        std::free(buf);
    }
};

thread_local thread_parser tp;

} // namespace

extern "C" sl__json_status sl__json_parse(const char *body, size_t len, sl__json_doc *doc,
                                          const char **why)
{
    *why = "";
    if (tp.ready && tp.parser.capacity() > retain_max && len <= retain_max) {
        tp.parser = simdjson::dom::parser();
        std::free(tp.buf);
        tp.buf = nullptr;
        tp.buf_cap = 0;
        tp.ready = false;
    }
    if (!tp.ready) {
        /* max_depth set here is kept when the capacity grows (ensure_capacity). */
        if (tp.parser.allocate(initial_capacity, SL__JSON_MAX_DEPTH) != simdjson::SUCCESS)
            return SL__JSON_NOMEM;
        tp.ready = true;
    }
    if (len > SIZE_MAX - simdjson::SIMDJSON_PADDING)
        return SL__JSON_NOMEM;
    size_t need = len + simdjson::SIMDJSON_PADDING;
    if (need > tp.buf_cap) {
        char *p = static_cast<char *>(std::realloc(tp.buf, need));
        if (!p)
            return SL__JSON_NOMEM;
        tp.buf = p;
        tp.buf_cap = need;
    }
    if (len)
        std::memcpy(tp.buf, body, len);
    std::memset(tp.buf + len, 0, simdjson::SIMDJSON_PADDING);

    simdjson::dom::element root;
    simdjson::error_code err = tp.parser.parse(tp.buf, len, false).get(root);
    switch (err) {
    case simdjson::SUCCESS:
        break;
    case simdjson::DEPTH_ERROR:
        return SL__JSON_TOO_DEEP;
    case simdjson::MEMALLOC:
        return SL__JSON_NOMEM;
    default:
        *why = simdjson::error_message(err);
        return SL__JSON_SYNTAX;
    }
    doc->tape = tp.parser.doc.tape.get();
    doc->strings = tp.parser.doc.string_buf.get();
    return SL__JSON_OK;
}
