/*
 * stix_split.h - pycti-compatible split of a STIX 2.1 bundle into one-object bundles.
 *
 * The result equals pycti 6.8.10's OpenCTIStix2Splitter.split_bundle_with_expectations
 * (cleanup_inconsistent_bundle false): the same objects in the same order (stable sort
 * by dependency count over visit order), the same bundle id, x_opencti_seq and cleaned
 * objects, the same expectation count and the same incompatible objects. Deliberate
 * deviations (see the README, "Splitting"):
 *  - an object is never emitted twice (pycti emits one twice when it is first reached
 *    through its x_opencti_id or OpenCTI extension id);
 *  - a `_refs` value that is not an array is left untouched (pycti iterates a string
 *    character by character); non-string elements of a `_refs` array are dropped and a
 *    non-string `_ref` is set to null (pycti raises on both);
 *  - a relationship without source_ref/target_ref or a sighting without
 *    where_sighted_refs is incompatible instead of aborting the whole send;
 *  - duplicate object ids, objects without a string id or type, and invalid JSON
 *    (including invalid UTF-8 and "\u0000") are errors, reported with their position.
 * Dependency counts saturate at UINT64_MAX instead of growing without bound.
 *
 * The split works in place: the result keeps offsets into the caller's buffer, which
 * must stay alive and unchanged until split_free(). Nothing recurses; time and memory
 * are linear in the input (plus a radix sort).
 */
#ifndef ODS_STIX_SPLIT_H
#define ODS_STIX_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* Inputs at or above 4 GiB cannot be represented (offsets are 32-bit). */
#define SPLIT_MAX_INPUT (UINT32_MAX - 1)

struct split_options {
    bool remove_creator; /* drop every object's created_by_ref first (CONFIG_REMOVE_CREATOR) */
    bool with_nb_deps;   /* keep pycti's "nb_deps" key inside each object (default true) */
};

struct split_result;

/*
 * Splits the bundle in data[0..len) (borrowed; must outlive the result). On success
 * *ret is a new result the caller frees with split_free(). On failure returns E_PARSE
 * (not JSON, not a usable bundle: err says what and where), E_TOO_BIG or E_NOMEM.
 */
int split_bundle(const char *data, size_t len, const struct split_options *opt,
                 struct split_result **ret, struct err *err) ODS_MUST_CHECK;
void split_free(struct split_result *r);

/* Number of output bundles, which is also the number of expectations. */
size_t split_count(const struct split_result *r);
/* Number of objects in the input. */
size_t split_objects(const struct split_result *r);
/* Number of incompatible objects (visited, not sent, not counted; as in pycti, an object can
 * also be sent when another visit, through another of its ids, found it compatible). */
size_t split_incompatible_count(const struct split_result *r);
/* The id of incompatible object i (i < split_incompatible_count), decoded, borrowed, not
 * NUL-terminated: its length goes to *ret_len. */
const char *split_incompatible_id(const struct split_result *r, size_t i, size_t *ret_len);

/* Appends output bundle i (i < split_count) as compact JSON to out. Deterministic:
 * the same bytes every time. */
int split_render(const struct split_result *r, size_t i, struct buf *out) ODS_MUST_CHECK;
/* x_opencti_seq (the dependency count) of output bundle i. */
uint64_t split_seq(const struct split_result *r, size_t i);
/* The STIX id of the object in output bundle i (decoded, borrowed, not NUL-terminated). */
const char *split_object_id(const struct split_result *r, size_t i, size_t *ret_len);

#endif
