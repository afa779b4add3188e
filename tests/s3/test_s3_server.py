#!/usr/bin/env python3
"""boto3 against examples/s3_server.rs: a real S3 client nobody here wrote.

Starts the example on a free loopback port with a fresh store, runs the
checks below with boto3 (SigV4, path-style), prints one line per check and
closes with "s3: N passed, M failed". Exit status 0 only if all passed.

    python tests/s3/test_s3_server.py --server target/debug/examples/s3_server

.ci/run installs boto3 (tests/s3/requirements.txt) into a virtualenv first.
"""

import argparse
import base64
import datetime
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import http.client
from urllib.parse import urlsplit

import boto3
from awscrt import checksums
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MIB = 1 << 20
BUCKET = "pstest"
BIG = "big/file.bin"
BIG_SIZE = 64 * MIB
ACCESS_KEY = "partstore"
SECRET_KEY = "partstore-secret"


def crc32c_b64(data):
    return base64.b64encode(checksums.crc32c(data).to_bytes(4, "big")).decode()


def error_code(fn, *args, **kwargs):
    """The S3 error code of a call that must fail (and its HTTP status)."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{fn.__name__} succeeded but should have failed")


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


class Server:
    def __init__(self, binary, workdir):
        self.dir = os.path.join(workdir, "store")
        self.proc = subprocess.Popen(
            [binary, "--addr", "127.0.0.1:0", "--dir", self.dir],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = line[len("listening on "):]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Checks:
    def __init__(self, s3, workdir, url):
        self.s3 = s3
        self.url = url
        self.workdir = workdir
        self.passed = 0
        self.failed = 0
        self.big = None

    def run(self, name, fn):
        t = time.monotonic()
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            print(f"FAIL {name}: {e!r}")
            traceback.print_exc(limit=3)
            return
        self.passed += 1
        print(f"ok   {name} ({time.monotonic() - t:.2f}s){': ' + detail if detail else ''}")

    # -- buckets ---------------------------------------------------------

    def buckets(self):
        self.s3.create_bucket(Bucket=BUCKET)
        names = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        expect(BUCKET in names, f"list_buckets: {names}")
        self.s3.head_bucket(Bucket=BUCKET)
        code = error_code(self.s3.create_bucket, Bucket=BUCKET)
        expect(code == ("BucketAlreadyOwnedByYou", 409), f"create again: {code}")
        code = error_code(self.s3.head_bucket, Bucket="no-such-bucket")
        expect(code[1] == 404, f"head_bucket missing: {code}")
        code = error_code(self.s3.get_object, Bucket="no-such-bucket", Key="k")
        expect(code == ("NoSuchBucket", 404), f"get in missing bucket: {code}")
        return "create_bucket, list_buckets, head_bucket; BucketAlreadyOwnedByYou, NoSuchBucket"

    # -- the 64 MiB multipart upload ---------------------------------------

    def upload_file_multipart(self):
        path = os.path.join(self.workdir, "big.bin")
        self.big = random.Random(7).randbytes(BIG_SIZE)
        with open(path, "wb") as f:
            f.write(self.big)
        calls = {"CreateMultipartUpload": 0, "UploadPart": 0, "CompleteMultipartUpload": 0}
        inflight = {"now": 0, "max": 0}
        lock = threading.Lock()

        def before(model, **_):
            with lock:
                calls[model.name] = calls.get(model.name, 0) + 1
                if model.name == "UploadPart":
                    inflight["now"] += 1
                    inflight["max"] = max(inflight["max"], inflight["now"])

        def after(model, **_):
            if model.name == "UploadPart":
                with lock:
                    inflight["now"] -= 1

        ev = self.s3.meta.events
        ev.register("before-call.s3", before, unique_id="count-before")
        ev.register("after-call.s3", after, unique_id="count-after")
        cfg = TransferConfig(
            multipart_threshold=8 * MIB,
            multipart_chunksize=8 * MIB,
            max_concurrency=4,
            preferred_transfer_client="classic",
        )
        t = time.monotonic()
        try:
            self.s3.upload_file(path, BUCKET, BIG, Config=cfg)
        finally:
            ev.unregister("before-call.s3", unique_id="count-before")
            ev.unregister("after-call.s3", unique_id="count-after")
        up_s = time.monotonic() - t
        expect(calls["CreateMultipartUpload"] == 1, f"calls {calls}")
        expect(calls["UploadPart"] == 8, f"calls {calls}")
        expect(calls["CompleteMultipartUpload"] == 1, f"calls {calls}")
        expect(inflight["max"] >= 2, f"parts were not parallel: {inflight}")
        head = self.s3.head_object(Bucket=BUCKET, Key=BIG, ChecksumMode="ENABLED")
        expect(head["ContentLength"] == BIG_SIZE, f"size {head['ContentLength']}")
        expect(head.get("ChecksumCRC32C") == crc32c_b64(self.big), "full-object CRC32C")
        out = os.path.join(self.workdir, "big.out")
        t = time.monotonic()
        self.s3.download_file(BUCKET, BIG, out, Config=cfg)
        down_s = time.monotonic() - t
        with open(out, "rb") as f:
            expect(f.read() == self.big, "downloaded bytes differ")
        # A plain GET with checksum mode: botocore checks the body against
        # the returned full-object CRC32C as it reads.
        r = self.s3.get_object(Bucket=BUCKET, Key=BIG, ChecksumMode="ENABLED")
        body = r["Body"].read()
        expect(body == self.big, "get_object bytes differ")
        expect(r.get("ChecksumCRC32C") == crc32c_b64(self.big), "GET CRC32C")
        return (
            f"upload_file {calls['UploadPart']} parts, up to {inflight['max']} in flight, "
            f"{BIG_SIZE / MIB / up_s:.0f} MiB/s; download_file {BIG_SIZE / MIB / down_s:.0f} MiB/s; "
            f"bytes and CRC32C {head['ChecksumCRC32C']} match"
        )

    # -- ranges --------------------------------------------------------------

    def ranged_gets(self):
        n = len(self.big)
        cases = [
            ("bytes=0-99", 0, 100),
            ("bytes=1048570-1048589", 1048570, 1048590),  # across a 1 MiB block
            (f"bytes={8 * MIB - 5}-{8 * MIB + 4}", 8 * MIB - 5, 8 * MIB + 5),  # across parts
            ("bytes=-100", n - 100, n),
            (f"bytes={n - 10}-", n - 10, n),
            (f"bytes={n - 10}-{n + 1000}", n - 10, n),  # end clamped
        ]
        for rng, a, b in cases:
            r = self.s3.get_object(Bucket=BUCKET, Key=BIG, Range=rng)
            data = r["Body"].read()
            expect(data == self.big[a:b], f"{rng}: bytes differ")
            expect(r["ContentRange"] == f"bytes {a}-{b - 1}/{n}", f"{rng}: {r['ContentRange']}")
            expect(r["ResponseMetadata"]["HTTPStatusCode"] == 206, f"{rng}: not 206")
        code = error_code(self.s3.get_object, Bucket=BUCKET, Key=BIG, Range=f"bytes={n}-")
        expect(code == ("InvalidRange", 416), f"range past end: {code}")
        return f"{len(cases)} ranges match, ContentRange and 206 right; past the end: InvalidRange 416"

    # -- listing -------------------------------------------------------------

    def list_objects(self):
        keys = ["dir/a.txt", "dir/b.txt", "dir/sub/c.txt", "dir/sub/d.txt", "dir2/e.txt", "top.txt"]
        for k in keys:
            self.s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode())
        everything = sorted(keys + [BIG])

        def lst(**kw):
            r = self.s3.list_objects_v2(Bucket=BUCKET, **kw)
            return (
                [o["Key"] for o in r.get("Contents", [])],
                [p["Prefix"] for p in r.get("CommonPrefixes", [])],
                r,
            )

        c, p, _ = lst(Prefix="dir/", Delimiter="/")
        expect((c, p) == (["dir/a.txt", "dir/b.txt"], ["dir/sub/"]), f"dir/ + /: {c} {p}")
        c, p, _ = lst(Prefix="dir/")
        expect(c == ["dir/a.txt", "dir/b.txt", "dir/sub/c.txt", "dir/sub/d.txt"] and not p, f"dir/: {c}")
        c, p, _ = lst(Prefix="dir", Delimiter="/")
        expect((c, p) == ([], ["dir/", "dir2/"]), f"dir + /: {c} {p}")
        c, p, _ = lst(Prefix="dir/s", Delimiter="/")
        expect((c, p) == ([], ["dir/sub/"]), f"dir/s + /: {c} {p}")
        c, p, _ = lst(Delimiter="/")
        expect((c, p) == (["top.txt"], ["big/", "dir/", "dir2/"]), f"root + /: {c} {p}")
        c, p, _ = lst(Prefix="nothing/here")
        expect((c, p) == ([], []), f"no match: {c} {p}")
        c, _, r = lst(StartAfter="dir/sub/c.txt")
        expect(c == ["dir/sub/d.txt", "dir2/e.txt", "top.txt"], f"start-after: {c}")
        # Paging by hand with max-keys 2, then through boto3's paginator.
        seen, token, pages = [], None, 0
        while True:
            kw = {"MaxKeys": 2}
            if token:
                kw["ContinuationToken"] = token
            c, _, r = lst(**kw)
            pages += 1
            expect(len(c) <= 2 and r["KeyCount"] == len(c), f"page of {len(c)}")
            seen += c
            if not r["IsTruncated"]:
                break
            token = r["NextContinuationToken"]
        expect(seen == everything, f"paged: {seen}")
        paged = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="dir/", Delimiter="/", PaginationConfig={"PageSize": 1}
        ):
            paged += [o["Key"] for o in page.get("Contents", [])]
            paged += [q["Prefix"] for q in page.get("CommonPrefixes", [])]
        expect(paged == ["dir/a.txt", "dir/b.txt", "dir/sub/"], f"paginator: {paged}")
        return f"prefix/delimiter cases right; {pages} pages of max-keys 2 visit all {len(seen)} keys once"

    # -- multipart by hand with UploadPartCopy ---------------------------------

    def multipart_with_copy(self):
        key = "copies/assembled.bin"
        up = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        tail = random.Random(8).randbytes(MIB + 123)
        r1 = self.s3.upload_part_copy(
            Bucket=BUCKET, Key=key, UploadId=up, PartNumber=1,
            CopySource={"Bucket": BUCKET, "Key": BIG}, CopySourceRange=f"bytes=0-{8 * MIB - 1}",
        )
        r2 = self.s3.upload_part_copy(
            Bucket=BUCKET, Key=key, UploadId=up, PartNumber=2,
            CopySource={"Bucket": BUCKET, "Key": BIG},
            CopySourceRange=f"bytes={20 * MIB}-{26 * MIB - 1}",
        )
        r3 = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=3, Body=tail)
        parts = self.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=up)["Parts"]
        expect([(p["PartNumber"], p["Size"]) for p in parts] == [(1, 8 * MIB), (2, 6 * MIB), (3, len(tail))],
               f"list_parts: {parts}")
        page = self.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=up, MaxParts=2)
        expect(page["IsTruncated"] and page["NextPartNumberMarker"] == 2, f"list_parts page: {page}")
        page = self.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=up, PartNumberMarker=2)
        expect([p["PartNumber"] for p in page["Parts"]] == [3] and not page["IsTruncated"], "list_parts page 2")
        etags = [r1["CopyPartResult"]["ETag"], r2["CopyPartResult"]["ETag"], r3["ETag"]]
        expect([p["ETag"] for p in parts] == etags, "list_parts ETags are the upload ETags")
        done = self.s3.complete_multipart_upload(
            Bucket=BUCKET, Key=key, UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]},
        )
        want = self.big[: 8 * MIB] + self.big[20 * MIB: 26 * MIB] + tail
        got = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        expect(got == want, "assembled bytes differ")
        expect(done.get("ChecksumCRC32C") == crc32c_b64(want), "complete's CRC32C")
        # UploadPartCopy with an unaligned start is the engine's rule.
        up2 = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        code = error_code(
            self.s3.upload_part_copy, Bucket=BUCKET, Key=key, UploadId=up2, PartNumber=1,
            CopySource={"Bucket": BUCKET, "Key": BIG}, CopySourceRange="bytes=100-6000000",
        )
        expect(code == ("InvalidRange", 416), f"unaligned copy range: {code}")
        self.s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up2)
        # CopyObject: whole object, by reference.
        c = self.s3.copy_object(Bucket=BUCKET, Key="copies/big-copy.bin", CopySource={"Bucket": BUCKET, "Key": BIG})
        got = self.s3.get_object(Bucket=BUCKET, Key="copies/big-copy.bin")["Body"].read()
        expect(got == self.big, "copy_object bytes differ")
        expect(c["CopyObjectResult"]["ChecksumCRC32C"] == crc32c_b64(self.big), "copy CRC32C")
        return "2 UploadPartCopy ranges + 1 UploadPart, ListParts paged, completed and compared; CopyObject compared"

    # -- errors --------------------------------------------------------------

    def bad_digests(self):
        body = b"hello world" * 1000
        wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
        code = error_code(self.s3.put_object, Bucket=BUCKET, Key="bad.txt", Body=body, ContentMD5=wrong_md5)
        expect(code == ("BadDigest", 400), f"bad Content-MD5: {code}")
        good_md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        self.s3.put_object(Bucket=BUCKET, Key="good.txt", Body=body, ContentMD5=good_md5)
        wrong_sha = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
        code = error_code(self.s3.put_object, Bucket=BUCKET, Key="bad.txt", Body=body, ChecksumSHA256=wrong_sha)
        expect(code == ("BadDigest", 400), f"bad x-amz-checksum-sha256: {code}")
        # CRC32 (boto3's default checksum) is not one the engine knows: the
        # server checks it on the way in.
        wrong_crc32 = base64.b64encode(b"\0\0\0\0").decode()
        code = error_code(self.s3.put_object, Bucket=BUCKET, Key="bad.txt", Body=body, ChecksumCRC32=wrong_crc32)
        expect(code == ("BadDigest", 400), f"bad x-amz-checksum-crc32: {code}")
        code = error_code(self.s3.head_object, Bucket=BUCKET, Key="bad.txt")
        expect(code[1] == 404, f"a failed put stored something: {code}")
        # A bad checksum on a part leaves the part absent.
        up = self.s3.create_multipart_upload(Bucket=BUCKET, Key="bad.bin")["UploadId"]
        code = error_code(self.s3.upload_part, Bucket=BUCKET, Key="bad.bin", UploadId=up, PartNumber=1,
                          Body=body, ContentMD5=wrong_md5)
        expect(code == ("BadDigest", 400), f"bad part Content-MD5: {code}")
        parts = self.s3.list_parts(Bucket=BUCKET, Key="bad.bin", UploadId=up).get("Parts", [])
        expect(parts == [], f"a failed part was stored: {parts}")
        self.s3.abort_multipart_upload(Bucket=BUCKET, Key="bad.bin", UploadId=up)
        return "bad Content-MD5, x-amz-checksum-sha256, -crc32 on PutObject/UploadPart: BadDigest, nothing stored"

    def trailer_checksums(self):
        """aws-chunked bodies with the checksum in a trailer, as AWS SDKs
        send over TLS (botocore does it only for https, so the request is
        built here and signed by botocore's own SigV4 signer)."""
        data = random.Random(10).randbytes(MIB + 5)

        def put(key, trailer, value):
            chunks = [b"%x\r\n" % len(data[i:i + 65536]) + data[i:i + 65536] + b"\r\n"
                      for i in range(0, len(data), 65536)]
            body = b"".join(chunks) + b"0\r\n" + f"{trailer}:{value}\r\n\r\n".encode()
            path = f"/{BUCKET}/{key}"
            req = AWSRequest(method="PUT", url=self.url + path, data=body, headers={
                "Content-Encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
                "x-amz-trailer": trailer,
                "Content-Length": str(len(body)),
            })
            # Makes the signer use STREAMING-UNSIGNED-PAYLOAD-TRAILER.
            req.context["checksum"] = {"request_algorithm": {"in": "trailer", "algorithm": "crc32c"}}
            S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
            conn = http.client.HTTPConnection(urlsplit(self.url).netloc, timeout=60)
            conn.request("PUT", path, body=body, headers=dict(req.headers.items()))
            r = conn.getresponse()
            text = r.read().decode()
            conn.close()
            return r.status, text

        b64 = lambda n: base64.b64encode(n.to_bytes(4, "big")).decode()  # noqa: E731
        status, text = put("trailer/good.bin", "x-amz-checksum-crc32c", crc32c_b64(data))
        expect(status == 200, f"good CRC32C trailer: {status} {text}")
        got = self.s3.get_object(Bucket=BUCKET, Key="trailer/good.bin")["Body"].read()
        expect(got == data, "trailer upload bytes differ")
        h = self.s3.head_object(Bucket=BUCKET, Key="trailer/good.bin")
        expect("ContentEncoding" not in h, f"aws-chunked stored as the object's encoding: {h.get('ContentEncoding')}")
        status, text = put("trailer/good32.bin", "x-amz-checksum-crc32", b64(checksums.crc32(data)))
        expect(status == 200, f"good CRC32 trailer: {status} {text}")
        status, text = put("trailer/bad.bin", "x-amz-checksum-crc32c", b64(1))
        expect(status == 400 and "<Code>BadDigest</Code>" in text, f"bad trailer: {status} {text}")
        code = error_code(self.s3.head_object, Bucket=BUCKET, Key="trailer/bad.bin")
        expect(code[1] == 404, f"a bad trailer stored something: {code}")
        return "CRC32C and CRC32 trailers checked; a wrong one is BadDigest, nothing stored; aws-chunked not stored"

    def complete_rules(self):
        key = "rules.bin"
        up = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        p1 = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=1, Body=b"a" * (4 * MIB))
        p2 = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=2, Body=b"b" * 100)
        parts = [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]
        code = error_code(self.s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=up,
                          MultipartUpload={"Parts": parts})
        expect(code == ("EntityTooSmall", 400), f"4 MiB non-last part: {code}")
        code = error_code(self.s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=up,
                          MultipartUpload={"Parts": [parts[1], parts[0]]})
        expect(code == ("InvalidPartOrder", 400), f"descending: {code}")
        code = error_code(self.s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=up,
                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000000000000001"'}]})
        expect(code == ("InvalidPart", 400), f"unknown ETag: {code}")
        p3 = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=3, Body=b"c")
        code = error_code(self.s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=up,
                          MultipartUpload={"Parts": [parts[1] | {"PartNumber": 2}, {"PartNumber": 3, "ETag": p3["ETag"]}]})
        expect(code == ("InvalidPartOrder", 400), f"gap (2, 3 without 1): {code}")
        code = error_code(self.s3.upload_part, Bucket=BUCKET, Key=key, UploadId=up, PartNumber=10001, Body=b"x")
        expect(code == ("InvalidArgument", 400), f"part 10001: {code}")
        # The upload is still open after every failed complete.
        ups = self.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        expect([u["UploadId"] for u in ups] == [up], f"open uploads: {ups}")
        self.s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up)
        ups = self.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        expect(ups == [], f"after abort: {ups}")
        code = error_code(self.s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=up,
                          MultipartUpload={"Parts": parts})
        expect(code == ("NoSuchUpload", 404), f"complete after abort: {code}")
        return "EntityTooSmall, InvalidPartOrder (order, gap), InvalidPart, InvalidArgument; abort empties ListMultipartUploads"

    def unknown_upload(self):
        for bad in ["0" * 32, "not-an-upload-id"]:
            code = error_code(self.s3.upload_part, Bucket=BUCKET, Key="x.bin", UploadId=bad, PartNumber=1, Body=b"x")
            expect(code == ("NoSuchUpload", 404), f"upload_part {bad}: {code}")
            code = error_code(self.s3.abort_multipart_upload, Bucket=BUCKET, Key="x.bin", UploadId=bad)
            expect(code == ("NoSuchUpload", 404), f"abort {bad}: {code}")
            code = error_code(self.s3.list_parts, Bucket=BUCKET, Key="x.bin", UploadId=bad)
            expect(code == ("NoSuchUpload", 404), f"list_parts {bad}: {code}")
        up = self.s3.create_multipart_upload(Bucket=BUCKET, Key="x.bin")["UploadId"]
        code = error_code(self.s3.upload_part, Bucket=BUCKET, Key="other.bin", UploadId=up, PartNumber=1, Body=b"x")
        expect(code == ("NoSuchUpload", 404), f"upload id of another key: {code}")
        self.s3.abort_multipart_upload(Bucket=BUCKET, Key="x.bin", UploadId=up)
        return "UploadPart, AbortMultipartUpload, ListParts with unknown ids or another key's id: NoSuchUpload"

    def crc32c_put(self):
        body = random.Random(9).randbytes(3 * MIB + 17)
        r = self.s3.put_object(Bucket=BUCKET, Key="crc.bin", Body=body, ChecksumAlgorithm="CRC32C")
        want = crc32c_b64(body)
        expect(r.get("ChecksumCRC32C") == want, f"put_object: {r.get('ChecksumCRC32C')} != {want}")
        h = self.s3.head_object(Bucket=BUCKET, Key="crc.bin", ChecksumMode="ENABLED")
        expect(h.get("ChecksumCRC32C") == want, "head_object")
        g = self.s3.get_object(Bucket=BUCKET, Key="crc.bin", ChecksumMode="ENABLED")
        expect(g["Body"].read() == body and g.get("ChecksumCRC32C") == want, "get_object")
        bad = crc32c_b64(body + b"!")
        code = error_code(self.s3.put_object, Bucket=BUCKET, Key="crc2.bin", Body=body, ChecksumCRC32C=bad)
        expect(code == ("BadDigest", 400), f"wrong CRC32C: {code}")
        return f"ChecksumCRC32C {want} returned by put/head/get; a wrong one is BadDigest"

    def objects_misc(self):
        code = error_code(self.s3.get_object, Bucket=BUCKET, Key="no/such/key")
        expect(code == ("NoSuchKey", 404), f"missing key: {code}")
        self.s3.delete_object(Bucket=BUCKET, Key="top.txt")
        code = error_code(self.s3.head_object, Bucket=BUCKET, Key="top.txt")
        expect(code[1] == 404, f"deleted: {code}")
        self.s3.delete_object(Bucket=BUCKET, Key="top.txt")  # idempotent
        r = self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "dir/a.txt"}, {"Key": "dir/b.txt"}]})
        expect(sorted(d["Key"] for d in r["Deleted"]) == ["dir/a.txt", "dir/b.txt"], f"delete_objects: {r}")
        h = self.s3.head_object(Bucket=BUCKET, Key=BIG)
        code = error_code(self.s3.get_object, Bucket=BUCKET, Key=BIG, IfNoneMatch=h["ETag"])
        expect(code[1] == 304, f"If-None-Match: {code}")
        code = error_code(self.s3.get_object, Bucket=BUCKET, Key=BIG, IfMatch='"nope"')
        expect(code[1] == 412, f"If-Match: {code}")
        return "NoSuchKey, delete (idempotent), delete_objects, If-None-Match 304, If-Match 412"

    # -- wave 2: what a conformance suite found (issue 16) --------------------

    def raw(self, method, path, body=b"", headers=None, chunked=False, query=""):
        """A request signed by botocore's SigV4 signer and sent as given
        (boto3 cannot send an empty Content-MD5 or a body without a
        length). Returns (status, headers, body)."""
        url = self.url + path + (f"?{query}" if query else "")
        h = dict(headers or {})
        req = AWSRequest(method=method, url=url, data=body, headers=h)
        if chunked:
            # A body of unknown length cannot be hashed up front.
            req.context["client_config"] = Config(s3={"payload_signing_enabled": False})
        S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
        sent = {k: v for k, v in req.headers.items()}
        conn = http.client.HTTPConnection(urlsplit(self.url).netloc, timeout=60)
        if chunked:
            pieces = (body[i:i + 70000] for i in range(0, len(body), 70000))
            conn.request(method, path + (f"?{query}" if query else ""), body=pieces,
                         headers=sent, encode_chunked=True)
        else:
            conn.request(method, path + (f"?{query}" if query else ""), body=body, headers=sent)
        r = conn.getresponse()
        out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        conn.close()
        return out

    def request_ids(self):
        r = self.s3.head_bucket(Bucket=BUCKET)
        expect(r["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id"), "no request id on a 200")
        try:
            self.s3.get_object(Bucket=BUCKET, Key="no/such/key")
            raise AssertionError("get of a missing key succeeded")
        except ClientError as e:
            meta = e.response["ResponseMetadata"]
            rid = meta.get("RequestId")
            expect(rid and meta["HTTPHeaders"].get("x-amz-request-id") == rid,
                   f"error RequestId {rid!r} vs header {meta['HTTPHeaders'].get('x-amz-request-id')!r}")
        status, headers, body = self.raw("GET", f"/{BUCKET}/no-such-key")
        expect(status == 404 and b"<RequestId>" + headers["x-amz-request-id"].encode() + b"</RequestId>" in body,
               f"error XML: {status} {body!r}")
        h = self.s3.head_object(Bucket=BUCKET, Key=BIG)
        try:
            self.s3.get_object(Bucket=BUCKET, Key=BIG, IfNoneMatch=h["ETag"])
            raise AssertionError("If-None-Match of the current ETag succeeded")
        except ClientError as e:
            hh = e.response["ResponseMetadata"]["HTTPHeaders"]
            expect(e.response["ResponseMetadata"]["HTTPStatusCode"] == 304, f"{e.response}")
            expect(hh.get("etag") == h["ETag"], f"304 without the ETag: {hh}")
            expect("last-modified" in hh, f"304 without Last-Modified: {hh}")
        return "x-amz-request-id on 200 and errors, <RequestId> in error XML; 304 carries ETag and Last-Modified"

    def utf8_keys(self):
        keys = ["a+b", "with space", "100%", "pct%2F", "ünï/çødé ✓", "trailing/", "/leading", "double//slash",
                "q?x&y=z#f", "tilde~", "semi;colon"]
        for k in keys:
            self.s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode())
        for k in keys:
            got = self.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()
            expect(got == k.encode(), f"{k!r}: {got!r}")
            expect(self.s3.head_object(Bucket=BUCKET, Key=k)["ContentLength"] == len(k.encode()), k)
        # boto3 asks for url encoding and decodes: keys come back exact.
        listed = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 3}):
            listed += [o["Key"] for o in page.get("Contents", [])]
        for k in keys:
            expect(k in listed, f"{k!r} not listed: {listed}")
        expect(len(listed) == len(set(listed)), f"listed twice: {listed}")
        # Asked for explicitly, keys come back encoded.
        r = self.s3.list_objects(Bucket=BUCKET, Prefix="with ", EncodingType="url")
        expect([o["Key"] for o in r["Contents"]] == ["with%20space"] and r["EncodingType"] == "url", f"{r}")
        c = self.s3.copy_object(Bucket=BUCKET, Key="copy of a+b", CopySource={"Bucket": BUCKET, "Key": "a+b"})
        expect(self.s3.get_object(Bucket=BUCKET, Key="copy of a+b")["Body"].read() == b"a+b", f"copy {c}")
        c, p, _ = self.lst2(Prefix="trailing", Delimiter="/")
        expect(p == ["trailing/"], f"trailing/ as a common prefix: {c} {p}")
        c, p, _ = self.lst2(Prefix="trailing/", Delimiter="/")
        expect(c == ["trailing/"], f"the key trailing/ itself: {c} {p}")
        c, p, _ = self.lst2(Delimiter="/", Prefix="/")
        expect(c == ["/leading"], f"/leading: {c} {p}")
        self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys + ["copy of a+b"]]})
        code = error_code(self.s3.head_object, Bucket=BUCKET, Key="with space")
        expect(code[1] == 404, f"deleted: {code}")
        code = error_code(self.s3.put_object, Bucket=BUCKET, Key="k" * 1025, Body=b"x")
        expect(code[1] == 400, f"a 1025-byte key: {code}")
        return f"{len(keys)} keys with + space % unicode, trailing/leading/double / put, got, listed, copied, deleted"

    def lst2(self, bucket=BUCKET, **kw):
        r = self.s3.list_objects_v2(Bucket=bucket, **kw)
        return ([o["Key"] for o in r.get("Contents", [])], [p["Prefix"] for p in r.get("CommonPrefixes", [])], r)

    def lst1(self, bucket=BUCKET, **kw):
        r = self.s3.list_objects(Bucket=bucket, **kw)
        return ([o["Key"] for o in r.get("Contents", [])], [p["Prefix"] for p in r.get("CommonPrefixes", [])], r)

    def listing_buckets(self, name, keys):
        self.s3.create_bucket(Bucket=name)
        for k in keys:
            self.s3.put_object(Bucket=name, Key=k, Body=b"x")

    def list_objects_v1(self):
        b = "list-v1"
        keys = ["asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla", "quux"]
        self.listing_buckets(b, keys)
        c, p, r = self.lst1(b)
        expect(c == sorted(keys) and p == [] and r["Marker"] == "" and r["Prefix"] == "" and not r["IsTruncated"],
               f"all: {c} {r}")
        expect("Delimiter" not in r and "NextMarker" not in r and r["MaxKeys"] == 1000, f"{r}")
        expect(all(o["Owner"]["ID"] for o in r["Contents"]), "v1 lists owners")
        c, p, r = self.lst1(b, Delimiter="/")
        expect(c == ["asdf", "quux"] and p == ["boo/", "cquux/"], f"/: {c} {p}")
        c, p, r = self.lst1(b, Prefix="boo/", Delimiter="/")
        expect(c == ["boo/bar"] and p == ["boo/baz/"], f"boo/ /: {c} {p}")
        c, p, r = self.lst1(b, Marker="boo/bar")
        expect(c == ["boo/baz/xyzzy", "cquux/bla", "cquux/thud", "quux"] and r["Marker"] == "boo/bar", f"marker: {c}")
        c, p, r = self.lst1(b, MaxKeys=2, Delimiter="/")
        expect(c == ["asdf"] and p == ["boo/"] and r["IsTruncated"] and r["NextMarker"] == "boo/", f"page 1: {c} {p} {r}")
        c, p, r = self.lst1(b, MaxKeys=2, Delimiter="/", Marker=r["NextMarker"])
        expect(c == ["quux"] and p == ["cquux/"] and not r["IsTruncated"], f"page 2: {c} {p} {r}")
        c, p, r = self.lst1(b, MaxKeys=1)
        expect(c == ["asdf"] and r["IsTruncated"] and "NextMarker" not in r, f"max 1, no delimiter: {r}")
        c, p, r = self.lst1(b, MaxKeys=0)
        expect(c == [] and p == [] and not r["IsTruncated"], f"max 0: {r}")
        paged = []
        for page in self.s3.get_paginator("list_objects").paginate(Bucket=b, PaginationConfig={"PageSize": 1}):
            paged += [o["Key"] for o in page.get("Contents", [])]
        expect(paged == sorted(keys), f"paginator: {paged}")
        c, p, r = self.lst1(b, Delimiter="")
        expect(c == sorted(keys) and "Delimiter" not in r, f"empty delimiter: {r}")
        code = error_code(self.s3.list_objects, Bucket="no-such-bucket")
        expect(code == ("NoSuchBucket", 404), f"{code}")
        return "prefix, delimiter, marker, NextMarker paging, max-keys 0/1, paginator, empty delimiter not echoed"

    def list_v2_details(self):
        b = "list-v2"
        keys = ["a", "b/1", "b/2", "c"]
        self.listing_buckets(b, keys)
        c, p, r = self.lst2(b, Delimiter="")
        expect(c == keys and "Delimiter" not in r, f"empty delimiter echoed: {r}")
        c, p, r = self.lst2(b, ContinuationToken="")
        expect(c == keys and r.get("ContinuationToken") == "", f"empty token: {r}")
        c, p, r = self.lst2(b, MaxKeys=2, Delimiter="/")
        expect(c == ["a"] and p == ["b/"] and r["IsTruncated"], f"page 1: {r}")
        c, p, r = self.lst2(b, MaxKeys=2, Delimiter="/", ContinuationToken=r["NextContinuationToken"])
        expect(c == ["c"] and p == [] and not r["IsTruncated"], f"page 2: {r}")
        c, p, r = self.lst2(b, StartAfter="b/1")
        expect(c == ["b/2", "c"] and r["StartAfter"] == "b/1", f"start-after: {r}")
        c, p, r = self.lst2(b, FetchOwner=True)
        expect(all("Owner" in o for o in r["Contents"]), f"FetchOwner: {r['Contents']}")
        c, p, r = self.lst2(b)
        expect(all("Owner" not in o for o in r["Contents"]), "owner without FetchOwner")
        return "empty Delimiter not echoed, empty ContinuationToken lists from the start, paging, StartAfter, FetchOwner"

    def any_delimiter(self):
        b = "delims"
        keys = ["_obj1_", "_under1/bar", "_under1/baz/xyzzy", "_under2/thud", "b-a-x", "b-a-y", "b-c", "cabxab", "cabyab", "z"]
        self.listing_buckets(b, keys)
        c, p, r = self.lst1(b, Delimiter="_")
        expect(c == ["b-a-x", "b-a-y", "b-c", "cabxab", "cabyab", "z"] and p == ["_"], f"_: {c} {p}")
        c, p, r = self.lst1(b, Delimiter="-", Prefix="b-")
        expect(c == ["b-c"] and p == ["b-a-"], f"-: {c} {p}")
        c, p, r = self.lst2(b, Delimiter="ab")
        expect(c == ["_obj1_", "_under1/bar", "_under1/baz/xyzzy", "_under2/thud", "b-a-x", "b-a-y", "b-c", "z"]
               and p == ["cab"], f"ab: {c} {p}")
        c, p, r = self.lst1(b, Prefix="_under1/", Delimiter="/")
        expect(c == ["_under1/bar"] and p == ["_under1/baz/"], f"/ under prefix: {c} {p}")
        # Paging one entry at a time visits each entry once.
        seen, marker = [], None
        while True:
            kw = {"MaxKeys": 1, "Delimiter": "-"}
            if marker:
                kw["Marker"] = marker
            c, p, r = self.lst1(b, **kw)
            seen += c + p
            if not r["IsTruncated"]:
                break
            marker = r["NextMarker"]
        expect(seen == ["_obj1_", "_under1/bar", "_under1/baz/xyzzy", "_under2/thud", "b-", "cabxab", "cabyab", "z"],
               f"paged by -: {seen}")
        seen, token = [], None
        while True:
            kw = {"MaxKeys": 1, "Delimiter": "ab"}
            if token:
                kw["ContinuationToken"] = token
            c, p, r = self.lst2(b, **kw)
            seen += c + p
            if not r["IsTruncated"]:
                break
            token = r["NextContinuationToken"]
        expect(seen.count("cab") == 1 and len(seen) == 9, f"paged by ab: {seen}")
        return "single- and multi-character delimiters, v1 and v2, paged one entry at a time"

    def delete_bucket(self):
        self.s3.create_bucket(Bucket="to-delete")
        self.s3.put_object(Bucket="to-delete", Key="k", Body=b"x")
        code = error_code(self.s3.delete_bucket, Bucket="to-delete")
        expect(code == ("BucketNotEmpty", 409), f"not empty: {code}")
        up = self.s3.create_multipart_upload(Bucket="to-delete", Key="m")["UploadId"]
        self.s3.delete_object(Bucket="to-delete", Key="k")
        code = error_code(self.s3.delete_bucket, Bucket="to-delete")
        expect(code == ("BucketNotEmpty", 409), f"open upload: {code}")
        self.s3.abort_multipart_upload(Bucket="to-delete", Key="m", UploadId=up)
        r = self.s3.delete_bucket(Bucket="to-delete")
        expect(r["ResponseMetadata"]["HTTPStatusCode"] == 204, f"{r}")
        code = error_code(self.s3.head_bucket, Bucket="to-delete")
        expect(code[1] == 404, f"head after delete: {code}")
        code = error_code(self.s3.delete_bucket, Bucket="to-delete")
        expect(code == ("NoSuchBucket", 404), f"delete again: {code}")
        expect("to-delete" not in [b["Name"] for b in self.s3.list_buckets()["Buckets"]], "still listed")
        self.s3.create_bucket(Bucket="to-delete")
        expect(self.s3.list_objects_v2(Bucket="to-delete")["KeyCount"] == 0, "recreated bucket not empty")
        self.s3.delete_bucket(Bucket="to-delete")
        return "empty: 204; object or open upload: BucketNotEmpty 409; then NoSuchBucket; recreated empty"

    def list_buckets_more(self):
        t0 = time.time()
        names = [f"lb-{i}" for i in range(3)]
        for n in names:
            self.s3.create_bucket(Bucket=n)
        r = self.s3.list_buckets()
        got = {b["Name"]: b for b in r["Buckets"]}
        for n in names:
            created = got[n]["CreationDate"].timestamp()
            expect(t0 - 5 <= created <= time.time() + 5, f"CreationDate of {n}: {got[n]}")
        expect(r["Owner"]["ID"], f"owner: {r}")
        seen, token = [], None
        while True:
            kw = {"MaxBuckets": 2, "Prefix": "lb-"}
            if token:
                kw["ContinuationToken"] = token
            r = self.s3.list_buckets(**kw)
            expect(len(r["Buckets"]) <= 2, f"page: {r['Buckets']}")
            seen += [b["Name"] for b in r["Buckets"]]
            token = r.get("ContinuationToken")
            if not token:
                break
        expect(seen == names, f"paged buckets: {seen}")
        # 63 characters: S3's longest bucket name.
        long = "b" + "-x" * 31
        self.s3.create_bucket(Bucket=long)
        self.s3.head_bucket(Bucket=long)
        loc = self.s3.get_bucket_location(Bucket=BUCKET)
        expect(loc.get("LocationConstraint") is None, f"us-east-1 location: {loc}")
        self.s3.create_bucket(Bucket="in-region", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
        code = error_code(self.s3.create_bucket, Bucket="elsewhere",
                          CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        expect(code == ("InvalidLocationConstraint", 400), f"another region: {code}")
        for n in names + [long, "in-region"]:
            self.s3.delete_bucket(Bucket=n)
        return "CreationDate, Owner, MaxBuckets/ContinuationToken/Prefix paging, a 63-character name, LocationConstraint"

    def metadata(self):
        expires = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        md = {"color": "blue", "empty": "", "mixed-case": "Value With Spaces"}
        self.s3.put_object(Bucket=BUCKET, Key="md/src", Body=b"bytes", Metadata=md, ContentType="text/plain",
                           CacheControl="max-age=60", ContentDisposition='attachment; filename="a.txt"',
                           ContentLanguage="de", Expires=expires)

        def check(key, want_md, ct="text/plain", std=True):
            for r in (self.s3.head_object(Bucket=BUCKET, Key=key), self.s3.get_object(Bucket=BUCKET, Key=key)):
                expect(r["Metadata"] == want_md, f"{key} metadata: {r['Metadata']}")
                expect(r["ContentType"] == ct, f"{key} content type: {r['ContentType']}")
                if std:
                    expect(r["CacheControl"] == "max-age=60" and r["ContentLanguage"] == "de"
                           and r["ContentDisposition"] == 'attachment; filename="a.txt"'
                           and r["Expires"] == expires, f"{key} standard headers: {r}")

        check("md/src", md)
        # COPY (the default) keeps them; REPLACE takes the request's.
        self.s3.copy_object(Bucket=BUCKET, Key="md/copy", CopySource={"Bucket": BUCKET, "Key": "md/src"})
        check("md/copy", md)
        self.s3.copy_object(Bucket=BUCKET, Key="md/replaced", CopySource={"Bucket": BUCKET, "Key": "md/src"},
                            MetadataDirective="REPLACE", Metadata={"new": "1"}, ContentType="image/png")
        check("md/replaced", {"new": "1"}, ct="image/png", std=False)
        r = self.s3.head_object(Bucket=BUCKET, Key="md/replaced")
        expect("CacheControl" not in r and "ContentLanguage" not in r, f"REPLACE kept old headers: {r}")
        expect(self.s3.get_object(Bucket=BUCKET, Key="md/replaced")["Body"].read() == b"bytes", "replaced bytes")
        # Onto itself: the way to change metadata.
        self.s3.copy_object(Bucket=BUCKET, Key="md/src", CopySource={"Bucket": BUCKET, "Key": "md/src"},
                            MetadataDirective="REPLACE", Metadata={"v": "2"}, ContentType="text/plain")
        check("md/src", {"v": "2"}, std=False)
        code = error_code(self.s3.copy_object, Bucket=BUCKET, Key="md/src", CopySource={"Bucket": BUCKET, "Key": "md/src"})
        expect(code == ("InvalidRequest", 400), f"self-copy without REPLACE: {code}")
        # To another bucket: rewritten, metadata carried.
        self.s3.copy_object(Bucket="list-v2", Key="md", CopySource={"Bucket": BUCKET, "Key": "md/copy"})
        r = self.s3.head_object(Bucket="list-v2", Key="md")
        expect(r["Metadata"] == md and r["CacheControl"] == "max-age=60", f"cross-bucket copy: {r}")
        # Multipart: the upload's.
        up = self.s3.create_multipart_upload(Bucket=BUCKET, Key="md/multi", Metadata={"m": "p"}, ContentLanguage="fr")
        p = self.s3.upload_part(Bucket=BUCKET, Key="md/multi", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
        self.s3.complete_multipart_upload(Bucket=BUCKET, Key="md/multi", UploadId=up["UploadId"],
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
        r = self.s3.head_object(Bucket=BUCKET, Key="md/multi")
        expect(r["Metadata"] == {"m": "p"} and r["ContentLanguage"] == "fr", f"multipart: {r}")
        code = error_code(self.s3.put_object, Bucket=BUCKET, Key="md/big", Body=b"x", Metadata={"k": "v" * 2100})
        expect(code == ("MetadataTooLarge", 400), f"over 2 KiB: {code}")
        r = self.s3.get_object(Bucket=BUCKET, Key="md/copy", ResponseContentType="x/y", ResponseCacheControl="no-cache")
        expect(r["ContentType"] == "x/y" and r["CacheControl"] == "no-cache", f"response-* overrides: {r}")
        return "x-amz-meta-*, Cache-Control, Content-Disposition, Content-Language, Expires kept; COPY/REPLACE, self, cross-bucket, multipart; MetadataTooLarge"

    def checksums(self):
        body = random.Random(11).randbytes(MIB + 3)
        sha256 = base64.b64encode(hashlib.sha256(body).digest()).decode()
        sha1 = base64.b64encode(hashlib.sha1(body).digest()).decode()
        r = self.s3.put_object(Bucket=BUCKET, Key="ck/sha256", Body=body, ChecksumAlgorithm="SHA256")
        expect(r.get("ChecksumSHA256") == sha256, f"put: {r}")
        r = self.s3.put_object(Bucket=BUCKET, Key="ck/sha1", Body=body, ChecksumSHA1=sha1)
        expect(r.get("ChecksumSHA1") == sha1, f"put: {r}")
        for key, name, want in [("ck/sha256", "ChecksumSHA256", sha256), ("ck/sha1", "ChecksumSHA1", sha1)]:
            h = self.s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
            expect(h.get(name) == want and h.get("ChecksumCRC32C") == crc32c_b64(body), f"head {key}: {h}")
            expect(name not in self.s3.head_object(Bucket=BUCKET, Key=key), f"{name} without ChecksumMode")
            g = self.s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
            expect(g["Body"].read() == body and g.get(name) == want, f"get {key}")
        c = self.s3.copy_object(Bucket=BUCKET, Key="ck/copy", CopySource={"Bucket": BUCKET, "Key": "ck/sha256"})
        expect(c["CopyObjectResult"].get("ChecksumSHA256") == sha256, f"copy: {c}")
        # Multipart with SHA-256 parts: the composite checksum of checksums.
        key = "ck/multi"
        r = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="SHA256")
        expect(r.get("ChecksumAlgorithm") == "SHA256", f"create echo: {r}")
        up = r["UploadId"]
        p1, p2 = random.Random(12).randbytes(5 * MIB), b"tail"
        parts = []
        for n, data in [(1, p1), (2, p2)]:
            r = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=n, Body=data,
                                    ChecksumAlgorithm="SHA256")
            want = base64.b64encode(hashlib.sha256(data).digest()).decode()
            expect(r.get("ChecksumSHA256") == want, f"part {n}: {r}")
            parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": want})
        listed = self.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=up)["Parts"]
        expect([q.get("ChecksumSHA256") for q in listed] == [q["ChecksumSHA256"] for q in parts], f"{listed}")
        joined = b"".join(base64.b64decode(q["ChecksumSHA256"]) for q in parts)
        composite = base64.b64encode(hashlib.sha256(joined).digest()).decode() + "-2"
        code = error_code(self.s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=up,
                          ChecksumSHA256="A" * 43 + "=-2", MultipartUpload={"Parts": parts})
        expect(code == ("BadDigest", 400), f"wrong whole checksum: {code}")
        done = self.s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up, ChecksumSHA256=composite,
                                                 MultipartUpload={"Parts": parts})
        expect(done.get("ChecksumSHA256") == composite, f"complete: {done}")
        h = self.s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        expect(h.get("ChecksumSHA256") == composite and h.get("ChecksumType") == "COMPOSITE", f"head: {h}")
        return f"SHA-256/SHA-1 puts returned by put/head/get/copy; multipart composite {composite}, BadDigest on a wrong one"

    def part_number_reads(self):
        key = "pn/multi"
        sizes = [5 * MIB, 6 * MIB, 1000]
        data = [random.Random(20 + i).randbytes(n) for i, n in enumerate(sizes)]
        up = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        parts = []
        for i, d in enumerate(data):
            r = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=i + 1, Body=d)
            parts.append({"PartNumber": i + 1, "ETag": r["ETag"]})
        done = self.s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
        start = 0
        for i, d in enumerate(data):
            g = self.s3.get_object(Bucket=BUCKET, Key=key, PartNumber=i + 1)
            expect(g["Body"].read() == d, f"part {i + 1} bytes")
            expect(g["PartsCount"] == 3 and g["ContentLength"] == len(d) and g["ETag"] == done["ETag"], f"{g}")
            expect(g["ContentRange"] == f"bytes {start}-{start + len(d) - 1}/{sum(sizes)}", g["ContentRange"])
            h = self.s3.head_object(Bucket=BUCKET, Key=key, PartNumber=i + 1)
            expect(h["PartsCount"] == 3 and h["ContentLength"] == len(d), f"head part {i + 1}: {h}")
            start += len(d)
        code = error_code(self.s3.get_object, Bucket=BUCKET, Key=key, PartNumber=4)
        expect(code == ("InvalidPart", 400), f"part 4 of 3: {code}")
        self.s3.put_object(Bucket=BUCKET, Key="pn/single", Body=b"body")
        g = self.s3.get_object(Bucket=BUCKET, Key="pn/single", PartNumber=1)
        expect(g["Body"].read() == b"body", "single part 1")
        code = error_code(self.s3.get_object, Bucket=BUCKET, Key="pn/single", PartNumber=2)
        expect(code == ("InvalidPart", 400), f"single part 2: {code}")
        return "GET/HEAD partNumber 1..3 of a 3-part object: bytes, PartsCount, ContentRange, ETag; InvalidPart past the end"

    def complete_again_and_order(self):
        key = "again.bin"
        up = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        p = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=1, Body=b"once")
        code = error_code(self.s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=up,
                          MultipartUpload={"Parts": [{"PartNumber": 9999, "ETag": p["ETag"]}]})
        expect(code == ("InvalidPart", 400), f"a part never uploaded: {code}")
        code = error_code(self.s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=up,
                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]},
                                                     {"PartNumber": 2, "ETag": '"0000000000000002"'}]})
        expect(code == ("InvalidPart", 400), f"a missing part 2: {code}")
        parts = {"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]}
        first = self.s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up, MultipartUpload=parts)
        again = self.s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up, MultipartUpload=parts)
        expect(again["ETag"] == first["ETag"], f"repeated complete: {first['ETag']} vs {again['ETag']}")
        code = error_code(self.s3.complete_multipart_upload, Bucket=BUCKET, Key="other.bin", UploadId=up,
                          MultipartUpload=parts)
        expect(code == ("NoSuchUpload", 404), f"repeat under another key: {code}")
        return "InvalidPart (not InvalidPartOrder) for parts never uploaded; a repeated complete answers 200 with the ETag"

    def request_edge_cases(self):
        status, _, body = self.raw("PUT", f"/{BUCKET}/md5-empty", b"data", {"Content-MD5": ""})
        expect(status == 400 and b"<Code>InvalidDigest</Code>" in body, f"empty Content-MD5: {status} {body!r}")
        code = error_code(self.s3.delete_objects, Bucket=BUCKET,
                          Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]})
        expect(code == ("MalformedXML", 400), f"1001 keys: {code}")
        r = self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1000)]})
        expect(len(r["Deleted"]) == 1000, "1000 keys")
        return "empty Content-MD5: InvalidDigest; DeleteObjects of 1001 keys: MalformedXML, 1000 fine"

    def chunked_without_length(self):
        data = random.Random(30).randbytes(3 * MIB + 11)
        status, _, body = self.raw("PUT", f"/{BUCKET}/chunked/put", data, chunked=True)
        expect(status == 200, f"chunked put: {status} {body!r}")
        got = self.s3.get_object(Bucket=BUCKET, Key="chunked/put")["Body"].read()
        expect(got == data, "chunked put bytes differ")
        key = "chunked/multi"
        up = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        p1 = random.Random(31).randbytes(5 * MIB)
        status, headers, body = self.raw("PUT", f"/{BUCKET}/{key}", p1, chunked=True,
                                         query=f"partNumber=1&uploadId={up}")
        expect(status == 200, f"chunked part: {status} {body!r}")
        etag = headers["etag"]
        self.s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up,
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        expect(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == p1, "chunked part bytes differ")
        return f"PUT and UploadPart with Transfer-Encoding: chunked and no length ({len(data)} and {len(p1)} bytes)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="path of the built s3_server example")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="partstore-s3-")
    server = Server(args.server, workdir)
    print(f"server at {server.url}, store in {server.dir}")
    s3 = boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": 2},
            connect_timeout=10,
            read_timeout=120,
        ),
    )
    checks = Checks(s3, workdir, server.url)
    try:
        checks.run("buckets", checks.buckets)
        checks.run("upload_file 64 MiB multipart, download, compare", checks.upload_file_multipart)
        if checks.big is not None:
            checks.run("ranged GETs", checks.ranged_gets)
            checks.run("ListObjectsV2 prefix/delimiter/paging", checks.list_objects)
            checks.run("multipart by hand with UploadPartCopy", checks.multipart_with_copy)
        checks.run("bad digests", checks.bad_digests)
        checks.run("aws-chunked trailer checksums", checks.trailer_checksums)
        checks.run("complete-time rules, abort", checks.complete_rules)
        checks.run("unknown upload ids", checks.unknown_upload)
        checks.run("ChecksumAlgorithm CRC32C", checks.crc32c_put)
        checks.run("objects: missing, delete, conditions", checks.objects_misc)
        checks.run("request ids, 304 with ETag", checks.request_ids)
        checks.run("keys with + space % unicode and slashes", checks.utf8_keys)
        checks.run("ListObjects v1", checks.list_objects_v1)
        checks.run("ListObjectsV2 details", checks.list_v2_details)
        checks.run("any delimiter", checks.any_delimiter)
        checks.run("DeleteBucket", checks.delete_bucket)
        checks.run("ListBuckets, bucket names, location", checks.list_buckets_more)
        checks.run("metadata headers and directive", checks.metadata)
        if checks.big is not None:
            checks.run("checksums SHA-256, SHA-1, composite", checks.checksums)
        checks.run("partNumber reads", checks.part_number_reads)
        checks.run("repeated complete, InvalidPart first", checks.complete_again_and_order)
        checks.run("empty Content-MD5, DeleteObjects limit", checks.request_edge_cases)
        checks.run("chunked bodies without a length", checks.chunked_without_length)
    finally:
        rc = server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if rc != 0:
        print(f"FAIL server exited with status {rc} on SIGINT")
        checks.failed += 1
    print(f"s3: {checks.passed} passed, {checks.failed} failed")
    sys.exit(0 if checks.failed == 0 else 1)


if __name__ == "__main__":
    main()
