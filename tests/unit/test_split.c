/*
 * Unit tests: the splitter. The fixtures (reference output of pycti 6.8.10), one small
 * bundle per rule of PROTOCOL.md §4.3 with the expected output written down by reasoning
 * from the rules, bad input, and the scale cases (deep chains, huge reference lists).
 */
#include <cjson/cJSON.h>

/* the rule table below leaves trailing fields to their zero defaults on purpose */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "buf.h"
#include "check.h"
#include "fileio.h"
#include "stix_split.h"

#define DATA ODS_TEST_DATA

static char *read_all(const char *path, size_t *len)
{
    struct buf b;
    struct err e;
    buf_init(&b, (size_t)1 << 30);
    if (file_read_all(path, (size_t)1 << 30, &b, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        abort();
    }
    *len = b.len;
    return buf_take(&b);
}

/* Compares output bundle i with the expected JSON (semantically; nb_deps optional). */
static int same_json(const char *got, const char *want)
{
    cJSON *a = cJSON_Parse(got), *b = cJSON_Parse(want);
    int eq = a && b && cJSON_Compare(a, b, 1);
    if (!eq)
        fprintf(stderr, "  got:  %s\n  want: %s\n", got, want);
    cJSON_Delete(a);
    cJSON_Delete(b);
    return eq;
}

static void check_fixture(const char *name, const char *input, const char *expected,
                          size_t want_count, size_t want_incompatible)
{
    char in_path[512], exp_path[512];
    snprintf(in_path, sizeof(in_path), "%s/%s", DATA, input);
    snprintf(exp_path, sizeof(exp_path), "%s/%s", DATA, expected);
    size_t n, m;
    char *in = read_all(in_path, &n);
    char *exp = read_all(exp_path, &m);
    struct split_result *r = NULL;
    struct err e = {{0}};
    struct split_options opt = {.with_nb_deps = true};
    int rc = split_bundle(in, n, &opt, &r, &e);
    if (rc) {
        fprintf(stderr, "%s: %s\n", name, e.msg);
        CHECK_INT_EQ(rc, 0);
    }
    CHECK_UINT_EQ(split_count(r), want_count);
    CHECK_UINT_EQ(split_incompatible_count(r), want_incompatible);
    struct buf out;
    buf_init(&out, (size_t)1 << 30);
    char *line = exp;
    size_t i = 0;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (i >= split_count(r))
            CHECK_FAIL_("%s: more reference lines than output bundles", name);
        buf_reset(&out);
        CHECK_INT_EQ(split_render(r, i, &out), 0);
        if (!same_json(out.data, line))
            CHECK_FAIL_("%s: bundle %zu differs from the reference", name, i + 1);
        i++;
        line = nl ? nl + 1 : NULL;
    }
    CHECK_UINT_EQ(i, want_count);
    buf_release(&out);
    split_free(r);
    free(in);
    free(exp);
}

static void test_fixture_sectors(void)
{
    check_fixture("sectors", "datasets/sectors.json", "split/sectors.jsonl", 121, 0);
}

static void test_fixture_geography(void)
{
    check_fixture("geography", "datasets/geography.json", "split/geography.jsonl", 539, 0);
}

static void test_fixture_companies(void)
{
    check_fixture("companies", "datasets/companies.json", "split/companies.jsonl", 63, 0);
}

static void test_fixture_mixed_small(void)
{
    check_fixture("mixed-small", "split/mixed-small.json", "split/mixed-small.jsonl", 192, 18);
}

/* ---- one rule per case ------------------------------------------------------------------ */

struct rule_case {
    const char *name;
    const char *input;
    const char *expected[8]; /* the objects (not bundles) in send order, NULL-terminated */
    size_t incompatible;
    bool remove_creator;
};

#define B(objs) "{\"type\":\"bundle\",\"id\":\"bundle--1\",\"objects\":[" objs "]}"
#define I(id, extra) "{\"type\":\"identity\",\"id\":\"identity--" id "\"" extra "}"

static const struct rule_case cases[] = {
    {"self reference becomes null",
     B(I("a", ",\"created_by_ref\":\"identity--a\"")),
     {I("a", ",\"created_by_ref\":null,\"nb_deps\":1")}},
    {"two-cycle: the object reached second loses the back edge",
     B(I("a", ",\"created_by_ref\":\"identity--b\"") "," I("b",
                                                           ",\"created_by_ref\":\"identity--a\"")),
     {I("b", ",\"created_by_ref\":null,\"nb_deps\":1"),
      I("a", ",\"created_by_ref\":\"identity--b\",\"nb_deps\":2")}},
    {"unsupported types: _ref nulled, _refs element removed",
     B(I("a", ",\"created_by_ref\":\"x-mitre-tactic--t\",\"object_marking_refs\":"
              "[\"x-mitre-tactic--t\",\"marking-definition--m\"]")),
     {I("a", ",\"created_by_ref\":null,\"object_marking_refs\":[\"marking-definition--m\"],"
             "\"nb_deps\":1")}},
    {"missing references are kept and count 0",
     B(I("a", ",\"created_by_ref\":\"identity--gone\"")),
     {I("a", ",\"created_by_ref\":\"identity--gone\",\"nb_deps\":1")}},
    {"duplicates are kept once but counted each time",
     B("{\"type\":\"report\",\"id\":\"report--r\",\"object_refs\":[\"identity--a\",\"identity--a\"]"
       "}," I("a", "")),
     {I("a", ",\"nb_deps\":1"), "{\"type\":\"report\",\"id\":\"report--r\",\"object_refs\":["
                                "\"identity--a\"],\"nb_deps\":3}"}},
    {"external references: first per url, or per source_name+external_id; no id dropped",
     B(I("a", ",\"external_references\":[{\"url\":\"https://x\"},{\"url\":\"https://x\","
              "\"description\":\"dup\"},{\"source_name\":\"s\",\"external_id\":\"e\"},"
              "{\"source_name\":\"s\"},{\"source_name\":\"s\",\"external_id\":\"e\",\"url\":null},"
              "{\"description\":\"nothing\"}]")),
     {I("a", ",\"external_references\":[{\"url\":\"https://x\"},{\"source_name\":\"s\","
             "\"external_id\":\"e\"}],\"nb_deps\":1")}},
    {"kill chain phases: first per (kill_chain_name, phase_name)",
     B("{\"type\":\"attack-pattern\",\"id\":\"attack-pattern--p\",\"kill_chain_phases\":["
       "{\"kill_chain_name\":\"k\",\"phase_name\":\"p\"},{\"phase_name\":\"p\",\"kill_chain_name\":"
       "\"k\"},{\"kill_chain_name\":\"k\",\"phase_name\":\"q\"}]}"),
     {"{\"type\":\"attack-pattern\",\"id\":\"attack-pattern--p\",\"kill_chain_phases\":["
      "{\"kill_chain_name\":\"k\",\"phase_name\":\"p\"},{\"kill_chain_name\":\"k\","
      "\"phase_name\":\"q\"}],\"nb_deps\":1}"}},
    {"relationships need both ends, sightings a sighting_of_ref and where_sighted_refs",
     B(I("a",
         "") ","
             "{\"type\":\"relationship\",\"id\":\"relationship--1\",\"source_ref\":\"identity--a\","
             "\"target_ref\":\"x-mitre-tactic--t\"},"
             "{\"type\":\"relationship\",\"id\":\"relationship--2\",\"source_ref\":\"identity--a\"}"
             ","
             "{\"type\":\"sighting\",\"id\":\"sighting--1\",\"sighting_of_ref\":\"identity--a\"},"
             "{\"type\":\"sighting\",\"id\":\"sighting--2\",\"sighting_of_ref\":\"identity--a\","
             "\"where_sighted_refs\":[\"x-mitre-tactic--t\"]},"
             "{\"type\":\"sighting\",\"id\":\"sighting--3\",\"sighting_of_ref\":\"identity--a\","
             "\"where_sighted_refs\":[\"identity--a\"]},"
             "{\"type\":\"x-mitre-tactic\",\"id\":\"x-mitre-tactic--t\"}"),
     {I("a", ",\"nb_deps\":1"),
      "{\"type\":\"sighting\",\"id\":\"sighting--3\",\"sighting_of_ref\":\"identity--a\","
      "\"where_sighted_refs\":[\"identity--a\"],\"nb_deps\":3}"},
     5},
    {"a three-cycle re-enters the first object, as pycti's recursion does",
     B("{\"type\":\"report\",\"id\":\"report--a\",\"object_refs\":[\"report--b\"]},"
       "{\"type\":\"report\",\"id\":\"report--b\",\"object_refs\":[\"report--c\"]},"
       "{\"type\":\"report\",\"id\":\"report--c\",\"object_refs\":[\"report--a\"]}"),
     {"{\"type\":\"report\",\"id\":\"report--c\",\"object_refs\":[\"report--a\"],\"nb_deps\":2}",
      "{\"type\":\"report\",\"id\":\"report--b\",\"object_refs\":[\"report--c\"],\"nb_deps\":3}",
      "{\"type\":\"report\",\"id\":\"report--a\",\"object_refs\":[\"report--b\"],\"nb_deps\":4}"}},
    {"equal counts keep the visit (post-)order",
     B(I("c", "") "," I("b", "") "," I("a", "")),
     {I("c", ",\"nb_deps\":1"), I("b", ",\"nb_deps\":1"), I("a", ",\"nb_deps\":1")}},
    {"CONFIG_REMOVE_CREATOR drops created_by_ref first",
     B(I("a", ",\"created_by_ref\":\"identity--b\"") "," I("b", "")),
     {I("a", ",\"nb_deps\":1"), I("b", ",\"nb_deps\":1")},
     0,
     true},
    {"a present nb_deps key keeps its position",
     B(I("a", ",\"nb_deps\":99,\"name\":\"x\"")),
     {"{\"type\":\"identity\",\"id\":\"identity--a\",\"nb_deps\":1,\"name\":\"x\"}"}},
    {"duplicate keys: first position, last value",
     B("{\"type\":\"identity\",\"name\":\"old\",\"id\":\"identity--a\",\"name\":\"new\"}"),
     {"{\"type\":\"identity\",\"name\":\"new\",\"id\":\"identity--a\",\"nb_deps\":1}"}},
    {"escaped ids compare by value",
     B(I("a", ",\"created_by_ref\":\"identity--\\u0062\"") "," I("b", "")),
     {I("b", ",\"nb_deps\":1"), I("a", ",\"created_by_ref\":\"identity--b\",\"nb_deps\":2")}},
    {"deviation: an object reached through its x_opencti_id is emitted once",
     B("{\"type\":\"report\",\"id\":\"report--r\",\"object_refs\":[\"1111\"]}," I(
         "a", ",\"x_opencti_id\":\"1111\"")),
     {I("a", ",\"x_opencti_id\":\"1111\",\"nb_deps\":1"),
      "{\"type\":\"report\",\"id\":\"report--r\",\"object_refs\":[\"1111\"],\"nb_deps\":2}"}},
    /* pycti caches a visit under the id it was reached by: A, reached first through
     * "alias-a" (B's object_refs), is walked again from the top through identity--A, and
     * so is B. The expected objects are pycti's (its algorithm, tests/tools/split_model.py
     * run as pycti) without the second copy of each: A then B, with the counts of the
     * second walks. */
    {"deviation: an object walked again through its own id is sent once, as pycti's first",
     B(I("A", ",\"x_opencti_id\":\"alias-a\",\"object_refs\":[\"alias-b\"]") "," I(
         "B", ",\"x_opencti_id\":\"alias-b\",\"object_refs\":[\"identity--A\",\"alias-a\"]")),
     {I("A", ",\"x_opencti_id\":\"alias-a\",\"object_refs\":[\"alias-b\"],\"nb_deps\":3"),
      I("B", ",\"x_opencti_id\":\"alias-b\",\"object_refs\":[\"alias-a\"],\"nb_deps\":4")}},
    /* The second walk of C (through identity--C, inside A's visit) removes identity--A
     * from its object_refs: pycti sends C with [] (both copies are one dict). */
    {"deviation: what a second walk cleans shows in the one copy sent",
     B(I("A",
         ",\"x_opencti_id\":\"alias-a\",\"object_refs\":[\"alias-b\",\"identity--E\","
         "\"identity--C\"]") "," I("B",
                                   ",\"x_opencti_id\":\"alias-b\"") "," I("C",
                                                                          ",\"x_opencti_"
                                                                          "id\":\"alias-"
                                                                          "c\",\"object_"
                                                                          "refs\":["
                                                                          "\"identity--A\","
                                                                          "\"identity--"
                                                                          "E\"]") "," I("D",
                                                                                        "") "," I("E",
                                                                                                  ",\"created_by_ref\":\"identity--D\",\"object_refs\":[\"alias-a\","
                                                                                                  "\"alias-c\"]")),
     {I("B", ",\"x_opencti_id\":\"alias-b\",\"nb_deps\":1"), I("D", ",\"nb_deps\":1"),
      I("C", ",\"x_opencti_id\":\"alias-c\",\"object_refs\":[],\"nb_deps\":1"),
      I("E", ",\"created_by_ref\":\"identity--D\",\"object_refs\":[\"alias-a\",\"alias-c\"],"
             "\"nb_deps\":7"),
      I("A", ",\"x_opencti_id\":\"alias-a\",\"object_refs\":[\"alias-b\",\"identity--E\","
             "\"identity--C\"],\"nb_deps\":10")}},
    {"deviation: a sighting without sighting_of_ref is incompatible (pycti raises)",
     B(I("a", "") ",{\"type\":\"sighting\",\"id\":\"sighting--1\",\"where_sighted_refs\":["
                  "\"identity--a\"]}"),
     {I("a", ",\"nb_deps\":1")},
     1},
    {"deviation: extensions or internal ids of the wrong shape are no internal ids",
     B(I("a", ",\"extensions\":[\"x\"]") "," I(
         "b", ",\"extensions\":{\"extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba\":"
              "\"str\"}") "," I("c", ",\"x_opencti_id\":[\"l\"]")),
     {I("a", ",\"extensions\":[\"x\"],\"nb_deps\":1"),
      I("b", ",\"extensions\":{\"extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba\":"
             "\"str\"},\"nb_deps\":1"),
      I("c", ",\"x_opencti_id\":[\"l\"],\"nb_deps\":1")}},
    {"deviation: a _refs value that is not an array is left untouched",
     B(I("a", ",\"object_marking_refs\":\"marking-definition--m\",\"x_refs\":null")),
     {I("a", ",\"object_marking_refs\":\"marking-definition--m\",\"x_refs\":null,\"nb_deps\":1")}},
    {"deviation: non-string references are cleaned",
     B(I("a", ",\"object_marking_refs\":[1,null,\"marking-definition--m\",{}],"
              "\"created_by_ref\":5")),
     {I("a", ",\"object_marking_refs\":[\"marking-definition--m\"],\"created_by_ref\":null,"
             "\"nb_deps\":1")}},
};

static void test_rules(void)
{
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct rule_case *c = &cases[k];
        struct split_result *r = NULL;
        struct err e = {{0}};
        struct split_options opt = {.remove_creator = c->remove_creator, .with_nb_deps = true};
        if (split_bundle(c->input, strlen(c->input), &opt, &r, &e))
            CHECK_FAIL_("%s: %s", c->name, e.msg);
        size_t want = 0;
        while (want < 8 && c->expected[want])
            want++;
        if (split_count(r) != want || split_incompatible_count(r) != c->incompatible) {
            split_free(r);
            CHECK_FAIL_("%s: %zu bundles and %zu incompatible, expected %zu and %zu", c->name,
                        split_count(r), split_incompatible_count(r), want, c->incompatible);
        }
        struct buf out;
        buf_init(&out, 1 << 20);
        for (size_t i = 0; i < want; i++) {
            buf_reset(&out);
            CHECK_INT_EQ(split_render(r, i, &out), 0);
            cJSON *got = cJSON_Parse(out.data);
            cJSON *objs = cJSON_GetObjectItem(got, "objects");
            char *obj = cJSON_PrintUnformatted(cJSON_GetArrayItem(objs, 0));
            int ok = same_json(obj, c->expected[i]);
            cJSON *seq = cJSON_GetObjectItem(got, "x_opencti_seq");
            cJSON *nb = cJSON_GetObjectItem(cJSON_GetArrayItem(objs, 0), "nb_deps");
            ok = ok && seq && nb && seq->valuedouble == nb->valuedouble &&
                 strcmp(cJSON_GetObjectItem(got, "id")->valuestring, "bundle--1") == 0;
            free(obj);
            cJSON_Delete(got);
            if (!ok) {
                buf_release(&out);
                split_free(r);
                CHECK_FAIL_("%s: bundle %zu differs", c->name, i + 1);
            }
        }
        buf_release(&out);
        split_free(r);
    }
}

static void test_generated_bundle_id(void)
{
    const char *in = "{\"objects\":[" I("a", "") "," I("b", "") "]}";
    struct split_result *r = NULL;
    struct err e;
    CHECK_INT_EQ(split_bundle(in, strlen(in), NULL, &r, &e), 0);
    struct buf a, b;
    buf_init(&a, 1 << 16);
    buf_init(&b, 1 << 16);
    CHECK_INT_EQ(split_render(r, 0, &a), 0);
    CHECK_INT_EQ(split_render(r, 1, &b), 0);
    cJSON *ja = cJSON_Parse(a.data), *jb = cJSON_Parse(b.data);
    const char *ida = cJSON_GetObjectItem(ja, "id")->valuestring;
    CHECK(strncmp(ida, "bundle--", 8) == 0 && strlen(ida) == 44);
    CHECK_STR_EQ(ida, cJSON_GetObjectItem(jb, "id")->valuestring);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    buf_release(&a);
    buf_release(&b);
    split_free(r);
}

/* ---- bad input ----------------------------------------------------------------------- */

static void expect_error_n(const char *in, size_t len, const char *needle)
{
    struct split_result *r = NULL;
    struct err e = {{0}};
    int rc = split_bundle(in, len, NULL, &r, &e);
    if (rc != E_PARSE) {
        split_free(r);
        CHECK_FAIL_("expected E_PARSE for %.60s, got %d", in, rc);
    }
    CHECK_NULL(r);
    CHECK_STR_CONTAINS(e.msg, needle);
}

#define expect_error(in, len, needle) expect_error_n((in), (len) ? (len) : strlen(in), (needle))

static void test_bad_input(void)
{
    expect_error_n("", 0, "the document is empty");
    expect_error("hello", 0, "not valid JSON: unexpected character 'h'");
    expect_error("{\"objects\": [", 0, "truncated JSON");
    expect_error("[1,2]", 0, "not a JSON object");
    expect_error("{\"type\":\"bundle\"}", 0, "no \"objects\" member");
    expect_error("{\"objects\":{}}", 0, "\"objects\" is not an array");
    expect_error("{\"objects\":[{\"type\":\"identity\"}]}", 0, "objects[0] has no \"id\"");
    expect_error("{\"objects\":[{\"id\":5,\"type\":\"x\"}]}", 0, "\"id\" that is not a string");
    expect_error("{\"objects\":[{\"id\":\"identity--a\"}]}", 0, "objects[0] has no \"type\"");
    expect_error("{\"objects\":[1]}", 0, "objects[0] is not a JSON object");
    expect_error("{\"objects\":[" I("a", "") "," I("a", "") "]}",
                 strlen("{\"objects\":[" I("a", "") "," I("a", "") "]}"),
                 "objects[1] repeats the id \"identity--a\" of objects[0]");
    expect_error("{\"objects\":[],\"x\":\"\xff\"}", 0, "invalid UTF-8 byte 0xff");
    expect_error("{\"objects\":[],\"x\":\"\xc0\x80\"}", 0, "invalid UTF-8");
    expect_error("{\"objects\":[],\"x\":\"\xed\xa0\x80\"}", 0, "invalid UTF-8");
    expect_error("{\"objects\":[],\"x\":\"a\\u0000b\"}", 0, "NUL character");
    expect_error("{\"objects\":[],\"x\":\"a\tb\"}", 0, "raw control character");
    expect_error("{\"objects\":[],\"x\":01}", 0, "unexpected character '1'");
    expect_error("{\"objects\":[]} extra", 0, "expected the end of the document");
    expect_error("{\"objects\":[],\"x\":\"\\q\"}", 0, "invalid escape");
    /* the error names where: line and column */
    expect_error("{\n  \"objects\": [\n    nope\n  ]\n}", 0, "line 3, column 5");
    /* nesting deeper than the limit */
    size_t depth = 1100;
    char *deep = malloc(depth * 2 + 64);
    size_t n = (size_t)snprintf(deep, depth * 2 + 64, "{\"objects\":[],\"x\":");
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    expect_error_n(deep, n, "nesting deeper than 1000 levels");
    free(deep);
}

static void test_values_kept_exactly(void)
{
    const char *in = "{\"objects\":[{\"type\":\"identity\",\"id\":\"identity--a\","
                     "\"n\":[1.0,1e400,-0,12345678901234567890123,2.5E-8],"
                     "\"s\":\"\\u00e9\xc3\xa9\\ud83d\\ude00\\/\\\"\"}]}";
    struct split_result *r = NULL;
    struct err e;
    CHECK_INT_EQ(split_bundle(in, strlen(in), NULL, &r, &e), 0);
    struct buf out;
    buf_init(&out, 1 << 16);
    CHECK_INT_EQ(split_render(r, 0, &out), 0);
    CHECK_STR_CONTAINS(out.data, "\"n\":[1.0,1e400,-0,12345678901234567890123,2.5E-8]");
    CHECK_STR_CONTAINS(out.data, "\"s\":\"\\u00e9\xc3\xa9\\ud83d\\ude00\\/\\\"\"");
    buf_release(&out);
    split_free(r);
}

/* deviation: a lone surrogate in an external reference is kept, and the reference still
 * deduplicated by it (pycti raises computing its id). Compared as text: cJSON refuses
 * lone surrogates. */
static void test_lone_surrogate_reference(void)
{
    const char *in = B(I("a", ",\"external_references\":[{\"url\":\"http://x/\\ud800\"},"
                              "{\"url\":\"http://x/\\ud800\"},{\"url\":\"http://x/\\udc00\"}]"));
    struct split_result *r = NULL;
    struct err e;
    CHECK_INT_EQ(split_bundle(in, strlen(in), NULL, &r, &e), 0);
    CHECK_UINT_EQ(split_count(r), 1);
    struct buf out;
    buf_init(&out, 1 << 16);
    CHECK_INT_EQ(split_render(r, 0, &out), 0);
    CHECK_STR_CONTAINS(out.data, "\"external_references\":[{\"url\":\"http://x/\\ud800\"},"
                                 "{\"url\":\"http://x/\\udc00\"}]");
    buf_release(&out);
    split_free(r);
}

/* ---- scale -------------------------------------------------------------------------------- */

static void test_million_chain(void)
{
    /* report i contains report i-1; listed from the last, so the walk is a million deep */
    const size_t n = 1000000;
    struct buf b;
    buf_init(&b, (size_t)1 << 31);
    CHECK_INT_EQ(buf_adds(&b, "{\"type\":\"bundle\",\"id\":\"bundle--c\",\"objects\":["), 0);
    for (size_t k = n; k-- > 0;) {
        int rc = buf_printf(&b, "%s{\"type\":\"report\",\"id\":\"report--%zu\"",
                            k + 1 < n ? "," : "", k);
        if (!rc && k > 0)
            rc = buf_printf(&b, ",\"object_refs\":[\"report--%zu\"]", k - 1);
        if (!rc)
            rc = buf_addc(&b, '}');
        CHECK_INT_EQ(rc, 0);
    }
    CHECK_INT_EQ(buf_adds(&b, "]}"), 0);
    struct split_result *r = NULL;
    struct err e;
    CHECK_INT_EQ(split_bundle(b.data, b.len, NULL, &r, &e), 0);
    CHECK_UINT_EQ(split_count(r), n);
    CHECK_UINT_EQ(split_seq(r, 0), 1);
    CHECK_UINT_EQ(split_seq(r, n - 1), n);
    size_t len;
    const char *id = split_object_id(r, n - 1, &len);
    CHECK(len == strlen("report--999999") && memcmp(id, "report--999999", len) == 0);
    id = split_object_id(r, 0, &len);
    CHECK(len == strlen("report--0") && memcmp(id, "report--0", len) == 0);
    split_free(r);
    buf_release(&b);
}

static void test_million_refs(void)
{
    const size_t n = 1000000;
    struct buf b;
    buf_init(&b, (size_t)1 << 31);
    CHECK_INT_EQ(buf_adds(&b, "{\"objects\":[{\"type\":\"report\",\"id\":\"report--big\","
                              "\"object_refs\":["),
                 0);
    for (size_t k = 0; k < n; k++)
        CHECK_INT_EQ(buf_printf(&b, "%s\"identity--%zu\"", k ? "," : "", k), 0);
    CHECK_INT_EQ(buf_adds(&b, "]}"), 0);
    for (size_t k = 0; k < n; k += 2) /* half of them are in the bundle */
        CHECK_INT_EQ(buf_printf(&b, ",{\"type\":\"identity\",\"id\":\"identity--%zu\"}", k), 0);
    CHECK_INT_EQ(buf_adds(&b, "]}"), 0);
    struct split_result *r = NULL;
    struct err e;
    CHECK_INT_EQ(split_bundle(b.data, b.len, NULL, &r, &e), 0);
    CHECK_UINT_EQ(split_count(r), n / 2 + 1);
    CHECK_UINT_EQ(split_seq(r, n / 2), n / 2 + 1); /* the report, last */
    struct buf out;
    buf_init(&out, (size_t)1 << 30);
    CHECK_INT_EQ(split_render(r, n / 2, &out), 0);
    CHECK_STR_CONTAINS(out.data, "\"identity--999999\"]");
    buf_release(&out);
    split_free(r);
    buf_release(&b);
}

int main(void)
{
    RUN(test_fixture_sectors);
    RUN(test_fixture_geography);
    RUN(test_fixture_companies);
    RUN(test_fixture_mixed_small);
    RUN(test_rules);
    RUN(test_generated_bundle_id);
    RUN(test_bad_input);
    RUN(test_values_kept_exactly);
    RUN(test_lone_surrogate_reference);
    RUN(test_million_chain);
    RUN(test_million_refs);
    return check_summary();
}
