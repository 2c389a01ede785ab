"""Random STIX-like bundles that exercise every rule of the splitter.

gen(seed, n) returns JSON text (not only json.dumps output: escaped ids, duplicate keys and
odd whitespace appear too), built to hit reference cycles of every length, self
references, references through internal ids, unsupported and missing targets, duplicate
references, sightings and relationships with missing or null ends, duplicate external
references and kill chain phases, a pre-existing nb_deps key, and non-list values.
"""

import json
import random

TYPES = ["identity", "location", "malware", "indicator", "report", "note", "tool",
         "attack-pattern", "campaign", "marking-definition", "relationship", "sighting",
         "x-mitre-tactic", "x-custom-thing", "language-content", "domain-name", "file"]


def _id(t, rnd):
    return "%s--%08x-0000-4000-8000-%012x" % (t, rnd.getrandbits(32), rnd.getrandbits(48))


def _enc_str(s, rnd, escape_rate):
    """Encodes s as a JSON string literal, sometimes with gratuitous escapes."""
    if rnd.random() >= escape_rate:
        return json.dumps(s, ensure_ascii=rnd.random() < 0.5)
    out = []
    for ch in s:
        r = rnd.random()
        if r < 0.15:
            out.append("\\u%04x" % ord(ch) if ord(ch) < 0x10000 else json.dumps(ch)[1:-1])
        elif r < 0.2 and ch == "/":
            out.append("\\/")
        else:
            out.append(json.dumps(ch, ensure_ascii=False)[1:-1])
    return '"' + "".join(out) + '"'


def _enc(v, rnd, esc):
    if isinstance(v, str):
        return _enc_str(v, rnd, esc)
    if isinstance(v, dict):
        return "{" + ",".join(_enc_str(k, rnd, esc) + ":" + _enc(x, rnd, esc)
                              for k, x in v.items()) + "}"
    if isinstance(v, list):
        sep = rnd.choice([",", ", ", " ,\n "])
        return "[" + sep.join(_enc(x, rnd, esc) for x in v) + "]"
    return json.dumps(v)


def gen(seed, n=40, escape_rate=0.1, pycti_safe=False):
    """pycti_safe: leave out what makes pycti 6.8.10 raise (a relationship or sighting
    without its keys, non-string references, non-list reference lists, external references
    that are not objects) and the documented deviations, so that its output can be
    compared with ours."""
    rnd = random.Random(seed)
    safe = pycti_safe
    ids = [_id(rnd.choice(TYPES), rnd) for _ in range(n)]
    aliases = {}
    missing = [_id(rnd.choice(TYPES), rnd) for _ in range(3)]
    objs = []
    for i, oid in enumerate(ids):
        t = oid.split("--")[0]
        o = {"type": t, "spec_version": "2.1", "id": oid}
        if rnd.random() < 0.15:
            alias = "%08x-1111-4111-8111-%012x" % (rnd.getrandbits(32), rnd.getrandbits(48))
            aliases[oid] = alias
            if rnd.random() < 0.5:
                o["x_opencti_id"] = alias
            else:
                o["extensions"] = {"extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba":
                                   {"id": alias, "extension_type": "property-extension"}}

        def pick():
            r = rnd.random()
            if r < 0.06:
                return oid  # self reference
            if r < 0.12:
                return rnd.choice(missing)
            if r < 0.2 and aliases:
                return rnd.choice(list(aliases.values()))
            if r < 0.23:
                return "not-an-id"
            return rnd.choice(ids)

        if t == "relationship":
            if safe or rnd.random() < 0.93:
                o["source_ref"] = pick() if rnd.random() < 0.95 else None
            if safe or rnd.random() < 0.93:
                o["target_ref"] = pick()
            o["relationship_type"] = "related-to"
        elif t == "sighting":
            o["sighting_of_ref"] = pick() if rnd.random() < 0.9 else None
            r = rnd.random()
            if r < 0.8 or safe:
                o["where_sighted_refs"] = [pick() for _ in range(rnd.randint(0, 3))]
            elif r < 0.9:
                o["where_sighted_refs"] = None
        if rnd.random() < 0.6:
            o["created_by_ref"] = pick()
        if rnd.random() < 0.5:
            o["object_marking_refs"] = [pick() for _ in range(rnd.randint(0, 3))]
        if rnd.random() < 0.4:
            refs = [pick() for _ in range(rnd.randint(0, 6))]
            if refs and rnd.random() < 0.3:
                refs.append(refs[0])  # duplicate
            o["object_refs"] = refs
        if rnd.random() < 0.1:
            o["sample_ref"] = pick()
        if rnd.random() < 0.04:
            o["object_refs"] = rnd.choice([None, []] if safe else [None, [], "report--x", {"a": 1}, 5])
        if rnd.random() < 0.03 and not safe:
            o["granular_refs"] = [1, None, pick(), {"x": pick()}]
        if rnd.random() < 0.03 and not safe:
            o["odd_ref"] = rnd.choice([5, True, ["x"], {"y": 1}])
        if rnd.random() < 0.3:
            refs = []
            for _ in range(rnd.randint(1, 5)):
                e = {}
                r = rnd.random()
                if r < 0.4:
                    e["url"] = rnd.choice(["https://a.example/1", "https://a.example/2",
                                           "https://a.example/\u00fc"])
                elif r < 0.7:
                    e["source_name"] = rnd.choice(["mitre-attack", "cve"])
                    e["external_id"] = rnd.choice(["T1", "T2", None])
                elif r < 0.8:
                    e["url"] = None
                    e["source_name"] = "x"
                    e["external_id"] = "y"
                else:
                    e["description"] = "no id"
                e["description"] = "d%d" % rnd.randint(0, 3)
                refs.append(e)
            if rnd.random() < 0.05 and not safe:
                refs.append("not an object")
            o["external_references"] = refs
        if rnd.random() < 0.2:
            o["kill_chain_phases"] = [
                {"kill_chain_name": rnd.choice(["mitre-attack", "lockheed"]),
                 "phase_name": rnd.choice(["persistence", "recon", None])}
                for _ in range(rnd.randint(1, 4))]
        if rnd.random() < 0.02:
            o["external_references"] = None if safe else rnd.choice([None, "text", {"a": 1}])
        if rnd.random() < 0.03:
            o["nb_deps"] = 99
        o["name"] = rnd.choice(["plain", "ünï ✓", "quote\"back\\slash", "tab\there", "\U0001F600"])
        if rnd.random() < 0.2:
            o["x_number"] = rnd.choice([0, -1, 1.5, 1e100, 123456789012345678901234567890, 2.5e-8])
        if rnd.random() < 0.1:
            o["nested"] = {"deep": [{"x_ref": pick()}, [1, [2, [3]]]], "y_refs": [pick()]}
        objs.append(o)
    # reference chains and longer cycles
    for _ in range(rnd.randint(0, 3)):
        cyc = rnd.sample(range(n), rnd.randint(2, min(6, n)))
        for a, b in zip(cyc, cyc[1:] + cyc[:1]):
            if objs[a]["type"] not in ("relationship", "sighting"):
                objs[a].setdefault("object_refs", [])
                if isinstance(objs[a]["object_refs"], list):
                    objs[a]["object_refs"].append(ids[b])
    rnd.shuffle(objs)
    bundle = {"type": "bundle", "id": "bundle--%08x-2222-4222-8222-000000000000" % seed,
              "objects": objs}
    text = _enc(bundle, rnd, escape_rate)
    if rnd.random() < 0.2:
        # a duplicate key inside one object: Python keeps the first position, last value
        text = text.replace('"spec_version":"2.1"', '"spec_version":"2.0","spec_version":"2.1"', 1)
    return text


if __name__ == "__main__":
    import sys
    print(gen(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 40))
