"""A reference model of pycti 6.8.10's bundle splitter, for differential tests.

This is a plain recursive restatement of the behaviour documented in PROTOCOL.md §4 and
in the team's reading of pycti 6.8.10 (split_bundle_with_expectations with
cleanup_inconsistent_bundle false), written for the tests: slow, obvious, and checked
against the reference outputs in tests/data/split. With deviations=True it also applies
the deliberate differences of our C splitter (see the README, "Splitting"):
  - an object is emitted at most once (the visit is also cached under the object's id);
  - a _refs value that is not a list is left untouched; non-string elements are dropped;
  - a non-string _ref value becomes null;
  - a relationship without source_ref/target_ref, or a sighting without a list
    where_sighted_refs, is incompatible instead of raising;
  - external_references / kill_chain_phases that are not lists are left untouched, and
    their elements that are not objects are dropped.
With deviations=False it raises where pycti raises.
"""

import json
import sys
import uuid

OPENCTI_EXTENSION = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"

SUPPORTED = set("""label vocabulary kill-chain-phase attack-pattern campaign case-incident
x-opencti-case-incident case-rfi x-opencti-case-rfi case-rft x-opencti-case-rft channel
course-of-action data-component x-mitre-data-component data-source x-mitre-data-source event
external-reference feedback x-opencti-feedback grouping identity incident indicator
infrastructure intrusion-set language location malware malware-analysis marking-definition
narrative note observed-data opinion report task x-opencti-task threat-actor tool
vulnerability security-coverage user group capability role settings notification work trash
draftworkspace playbook deleteoperation workspace publicdashboard autonomous-system directory
domain-name email-addr email-message email-mime-part-type artifact file x509-certificate
ipv4-addr ipv6-addr mac-addr mutex network-traffic process software url user-account
windows-registry-key windows-registry-value-type hostname cryptographic-key
cryptocurrency-wallet text user-agent bank-account phone-number credential tracking-number
payment-card media-content simple-observable persona ssh-key relationship sighting
pir""".split())


class Unsupported(Exception):
    """pycti would raise here (only with deviations=False)."""


def supported(ref):
    if not isinstance(ref, str):
        raise Unsupported("non-string reference")
    if "--" in ref:
        return ref.split("--")[0] in SUPPORTED
    return True


def _canon(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def ext_ref_key(ref):
    url, src, xid = ref.get("url"), ref.get("source_name"), ref.get("external_id")
    if url is not None:
        return "U" + _canon(url)
    if src is not None and xid is not None:
        return "S" + _canon([src, xid])
    return None


def kcp_key(phase):
    return _canon([phase.get("kill_chain_name"), phase.get("phase_name")])


def internal_ids(item):
    ids = []
    if item.get("x_opencti_id"):
        ids.append(item["x_opencti_id"])
    ext = item.get("extensions")
    if ext and isinstance(ext, dict) and isinstance(ext.get(OPENCTI_EXTENSION), dict) \
            and ext[OPENCTI_EXTENSION].get("id"):
        ids.append(ext[OPENCTI_EXTENSION]["id"])
    return ids


class Model:
    def __init__(self, deviations=True):
        self.dev = deviations
        self.cache_index = {}
        self.cache_refs = {}
        self.elements = []
        self.incompatible = []
        self.emitted = set()

    def _internal(self, item):
        ids = internal_ids(item)
        if self.dev:
            ids = [i for i in ids if isinstance(i, str)]
        return ids

    def enlist(self, item_id, raw, parents):
        nb_deps = 1
        if item_id not in raw:
            return 0
        if item_id in self.cache_index:
            return self.cache_index[item_id]["nb_deps"]
        item = raw[item_id]
        self.cache_refs.setdefault(item_id, [])
        for key in list(item.keys()):
            value = item[key]
            if key.endswith("_refs") and item[key] is not None:
                if self.dev and not isinstance(item[key], list):
                    continue
                to_keep = []
                for ref in item[key]:
                    if self.dev and not isinstance(ref, str):
                        item[key] = to_keep
                        continue
                    not_dep = ref not in self.cache_refs or item_id not in self.cache_refs[ref]
                    if supported(ref) and ref not in parents and ref != item_id and not_dep:
                        self.cache_refs[item_id].append(ref)
                        nb_deps += self.enlist(ref, raw, parents + [ref])
                        if ref not in to_keep:
                            to_keep.append(ref)
                    item[key] = to_keep
            elif key.endswith("_ref"):
                if self.dev and value is not None and not isinstance(value, str):
                    item[key] = None
                    continue
                not_dep = value not in self.cache_refs or item_id not in self.cache_refs[value]
                if value is not None and value not in parents and supported(value) \
                        and value != item_id and not_dep:
                    self.cache_refs[item_id].append(value)
                    nb_deps += self.enlist(value, raw, parents + [value])
                else:
                    item[key] = None
            elif key == "external_references" and item[key] is not None:
                if self.dev and not isinstance(item[key], list):
                    continue
                seen, kept = set(), []
                for ref in item[key]:
                    if self.dev and not isinstance(ref, dict):
                        continue
                    k = ext_ref_key(ref)
                    if k is not None and k not in seen:
                        seen.add(k)
                        kept.append(ref)
                item[key] = kept
            elif key == "kill_chain_phases" and item[key] is not None:
                if self.dev and not isinstance(item[key], list):
                    continue
                seen, kept = set(), []
                for phase in item[key]:
                    if self.dev and not isinstance(phase, dict):
                        continue
                    k = kcp_key(phase)
                    if k not in seen:
                        seen.add(k)
                        kept.append(phase)
                item[key] = kept
        item["nb_deps"] = nb_deps
        if item_id not in self.cache_index:
            if item["type"] == "relationship":
                if self.dev:
                    ok = item.get("source_ref") is not None and item.get("target_ref") is not None
                else:
                    ok = item["source_ref"] is not None and item["target_ref"] is not None
            elif item["type"] == "sighting":
                if self.dev:
                    w = item.get("where_sighted_refs")
                    ok = item.get("sighting_of_ref") is not None and isinstance(w, list) and len(w) > 0
                else:
                    ok = item["sighting_of_ref"] is not None and len(item["where_sighted_refs"]) > 0
            else:
                ok = supported(item_id)
            if ok:
                # deviation: never emit an object twice (pycti appends the same dict again
                # when a later visit through another of its ids finds it compatible)
                if not (self.dev and id(item) in self.emitted):
                    self.elements.append(item)
                    self.emitted.add(id(item))
            elif not (self.dev and any(i is item for i in self.incompatible)):
                # as pycti, also when an earlier visit through another id emitted it
                self.incompatible.append(item)
            self.cache_index[item_id] = item
            for iid in self._internal(item):
                self.cache_index[iid] = item
        return nb_deps

    def split(self, bundle):
        """bundle: a parsed dict. Returns (bundles, incompatible ids)."""
        if "objects" not in bundle:
            raise ValueError("not a bundle")
        bid = bundle.get("id", "bundle--generated")
        raw = {}
        for item in bundle["objects"]:
            raw[item["id"]] = item
            for iid in self._internal(item):
                raw[iid] = item
        for item in bundle["objects"]:
            self.enlist(item["id"], raw, [])
        self.elements.sort(key=lambda e: e["nb_deps"])
        out = [{"type": "bundle", "id": bid, "spec_version": "2.1",
                "x_opencti_seq": e["nb_deps"], "objects": [e]} for e in self.elements]
        return out, [i["id"] for i in self.incompatible]


def split_text(text, deviations=True):
    sys.setrecursionlimit(100000)
    return Model(deviations).split(json.loads(text))


if __name__ == "__main__":
    bundles, incompatible = split_text(open(sys.argv[1]).read(),
                                       deviations="--pycti" not in sys.argv)
    for b in bundles:
        print(json.dumps(b))
    print("%d expectations, %d incompatible" % (len(bundles), len(incompatible)), file=sys.stderr)
