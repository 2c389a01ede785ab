"""Generates a STIX 2.1 bundle with realistic reference density, streamed to a file.

Shape (after MITRE ATT&CK and typical threat feeds): ~45% relationships (source, target,
creator, one marking, often an external reference), ~40% SDOs and observables (creator,
markings, 1-3 external references with some duplicates, kill chain phases, a description
of a few hundred bytes), ~5% reports and groupings referencing 10-60 objects, plus a few
identities and marking definitions everything points at. References go mostly to
objects defined earlier in the file, some to later ones and a few to missing objects.
Average object size is about 600 bytes.

usage: gen_stix.py N OUT.json [SEED]
"""

import json
import random
import sys

SDO = ["indicator", "malware", "attack-pattern", "tool", "intrusion-set", "campaign",
       "threat-actor", "vulnerability", "course-of-action", "ipv4-addr", "domain-name", "url",
       "file", "infrastructure", "location"]
WORDS = ("adversary lateral movement persistence credential access exfiltration beacon "
         "loader dropper phishing payload command control network traffic registry service "
         "process injection obfuscated script scheduled task").split()


def uid(rnd, t):
    return "%s--%08x-%04x-4%03x-8%03x-%012x" % (t, rnd.getrandbits(32), rnd.getrandbits(16),
                                                rnd.getrandbits(12), rnd.getrandbits(12),
                                                rnd.getrandbits(48))


def text(rnd, n):
    return " ".join(rnd.choice(WORDS) for _ in range(n))


def generate(n, out, seed=1):
    rnd = random.Random(seed)
    authors = [uid(rnd, "identity") for _ in range(5)]
    markings = [uid(rnd, "marking-definition") for _ in range(4)]
    ids = []
    out.write('{"type": "bundle", "id": "%s", "objects": [\n' % uid(rnd, "bundle"))
    first = True

    def emit(o):
        nonlocal first
        out.write(("" if first else ",\n") + json.dumps(o))
        first = False

    for a in authors:
        emit({"type": "identity", "spec_version": "2.1", "id": a, "name": "Author " + a[-4:],
              "identity_class": "organization", "object_marking_refs": [markings[0]]})
    for m in markings:
        emit({"type": "marking-definition", "spec_version": "2.1", "id": m,
              "definition_type": "statement", "definition": {"statement": "tlp"},
              "created_by_ref": authors[0]})
    count = len(authors) + len(markings)

    def pick():
        r = rnd.random()
        if r < 0.02 or not ids:
            return uid(rnd, rnd.choice(SDO))  # missing, or defined later by chance
        return ids[int(len(ids) * (1 - rnd.random() ** 2)) - 1] if r < 0.7 else rnd.choice(ids)

    while count < n:
        r = rnd.random()
        created = "2024-%02d-%02dT00:00:00.000Z" % (rnd.randint(1, 12), rnd.randint(1, 28))
        if r < 0.45 and len(ids) > 2:
            o = {"type": "relationship", "spec_version": "2.1", "id": uid(rnd, "relationship"),
                 "created": created, "modified": created,
                 "relationship_type": rnd.choice(["uses", "indicates", "targets", "mitigates"]),
                 "source_ref": pick(), "target_ref": pick(), "created_by_ref": rnd.choice(authors),
                 "object_marking_refs": [rnd.choice(markings)]}
            if rnd.random() < 0.5:
                o["external_references"] = [{"source_name": "mitre-attack",
                                             "url": "https://attack.example/%d" % rnd.randint(1, 9999)}]
        elif r < 0.95 or len(ids) < 50:
            t = rnd.choice(SDO)
            o = {"type": t, "spec_version": "2.1", "id": uid(rnd, t), "created": created,
                 "modified": created, "name": text(rnd, 3), "description": text(rnd, rnd.randint(20, 70)),
                 "created_by_ref": rnd.choice(authors),
                 "object_marking_refs": rnd.sample(markings, rnd.randint(1, 2))}
            refs = [{"source_name": "mitre-attack", "external_id": "T%04d" % rnd.randint(1, 1500),
                     "url": "https://attack.example/T%d" % rnd.randint(1, 1500)}
                    for _ in range(rnd.randint(1, 3))]
            if rnd.random() < 0.2:
                refs.append(dict(refs[0]))
            o["external_references"] = refs
            if t in ("attack-pattern", "malware", "tool") and rnd.random() < 0.7:
                o["kill_chain_phases"] = [{"kill_chain_name": "mitre-attack",
                                           "phase_name": rnd.choice(["persistence", "execution", "discovery"])}
                                          for _ in range(rnd.randint(1, 2))]
            if t == "indicator":
                o["pattern"] = "[file:hashes.'SHA-256' = '%064x']" % rnd.getrandbits(256)
                o["pattern_type"] = "stix"
                o["valid_from"] = created
        else:
            t = rnd.choice(["report", "grouping"])
            o = {"type": t, "spec_version": "2.1", "id": uid(rnd, t), "created": created,
                 "name": text(rnd, 4), "published": created, "created_by_ref": rnd.choice(authors),
                 "object_marking_refs": [rnd.choice(markings)],
                 "object_refs": list({pick() for _ in range(rnd.randint(10, 60))})}
            if t == "grouping":
                o["context"] = "suspicious-activity"
        ids.append(o["id"])
        emit(o)
        count += 1
    out.write("\n]}\n")


def report_bundle(nrefs, out):
    """One report with nrefs object_refs, all present in the bundle."""
    rnd = random.Random(7)
    targets = [uid(rnd, "indicator") for _ in range(nrefs)]
    objs = [{"type": "report", "spec_version": "2.1", "id": uid(rnd, "report"), "name": "big",
             "published": "2024-01-01T00:00:00Z", "object_refs": targets}]
    objs += [{"type": "indicator", "spec_version": "2.1", "id": t, "pattern": "[x:y = 'z']",
              "pattern_type": "stix"} for t in targets]
    json.dump({"type": "bundle", "id": uid(rnd, "bundle"), "objects": objs}, out)


if __name__ == "__main__":
    n = int(sys.argv[1])
    with open(sys.argv[2], "w") as f:
        if len(sys.argv) > 3 and sys.argv[3] == "report":
            report_bundle(n, f)
        else:
            generate(n, f, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
