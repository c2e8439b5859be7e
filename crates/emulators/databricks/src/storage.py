"""dbutils.fs and spark.conf for notebooks run by the Databricks emulator.

What real notebooks use to move blob data, in the standard library only: dbutils.fs.cp, ls,
rm and head on `file:/` paths (the driver's local disk: here, this machine) and on
`wasbs://<container>@<account>.blob.core.windows.net/<path>`, authenticated with the account
key set by `spark.conf.set("fs.azure.account.key.<account>.blob.core.windows.net", key)`
(Shared Key). An account's blob endpoint is https://<account>.blob.core.windows.net unless
the emulator was told another one (Azurite's, for a local run).

Storage errors come out as Python exceptions that say what failed (FileNotFoundError naming
the path, PermissionError naming the account and the setting), never as response bodies.
"""

import base64
import datetime
import hashlib
import hmac
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections import namedtuple

API_VERSION = "2021-12-02"
BLOB_HOST_SUFFIX = ".blob.core.windows.net"
_MISSING = object()


class SparkNoSuchElementException(Exception):
    """What spark.conf.get raises for a setting that is not set and has no default."""


class SparkConf:
    """The runtime configuration (`spark.conf`): string settings by name."""

    def __init__(self):
        self._values = {}

    def set(self, key, value):
        self._values[str(key)] = str(value)

    def get(self, key, default=_MISSING):
        if key in self._values:
            return self._values[key]
        if default is not _MISSING:
            return default
        raise SparkNoSuchElementException(f'[SQL_CONF_NOT_FOUND] The SQL config "{key}" cannot be found.')

    def unset(self, key):
        self._values.pop(key, None)

    def isModifiable(self, key):
        return True


class SparkSession:
    """Only `spark.conf`: the emulator has no Spark; the storage settings are what it uses."""

    def __init__(self):
        self.conf = SparkConf()


FileInfo = namedtuple("FileInfo", "path name size modificationTime")


class LocalFiles:
    """`file:/` paths: the local disk."""

    @staticmethod
    def local(path):
        return urllib.parse.unquote(urllib.parse.urlsplit(path).path) or "/"

    def url(self, path, child):
        return "file:" + os.path.join(self.local(path), child)

    def stat(self, path):
        p = self.local(path)
        if os.path.isdir(p):
            return "dir", 0, int(os.path.getmtime(p) * 1000)
        if os.path.isfile(p):
            return "file", os.path.getsize(p), int(os.path.getmtime(p) * 1000)
        return None

    def read(self, path, limit=None):
        with open(self.local(path), "rb") as f:
            return f.read() if limit is None else f.read(limit)

    def write(self, path, data):
        p = self.local(path)
        os.makedirs(os.path.dirname(p) or "/", exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)

    def list(self, path):
        p = self.local(path)
        infos = []
        for name in sorted(os.listdir(p)):
            full = os.path.join(p, name)
            is_dir = os.path.isdir(full)
            infos.append(FileInfo("file:" + full + ("/" if is_dir else ""), name + ("/" if is_dir else ""),
                                  0 if is_dir else os.path.getsize(full), int(os.path.getmtime(full) * 1000)))
        return infos

    def files_under(self, path):
        root = self.local(path)
        found = []
        for folder, _, names in os.walk(root):
            for name in names:
                found.append(os.path.relpath(os.path.join(folder, name), root))
        return sorted(found)

    def delete(self, path, recurse):
        p = self.local(path)
        if os.path.isdir(p):
            shutil.rmtree(p) if recurse else os.rmdir(p)
        else:
            os.remove(p)


class BlobFiles:
    """`wasbs://` paths: Azure Blob Storage with Shared Key authentication."""

    def __init__(self, conf, endpoints):
        self._conf = conf
        self._endpoints = endpoints

    @staticmethod
    def parse(path):
        parts = urllib.parse.urlsplit(path)
        container, _, host = parts.netloc.partition("@")
        if not container or not host.endswith(BLOB_HOST_SUFFIX):
            raise ValueError(f"{path}: expected wasbs://<container>@<account>.blob.core.windows.net/<path>")
        return container, host[: -len(BLOB_HOST_SUFFIX)], parts.path.lstrip("/")

    def url(self, path, child):
        return path.rstrip("/") + "/" + child

    def _request(self, method, path, query=None, data=None, headers=None, missing_ok=False, shown=None):
        """Sends one signed request; answers (status, headers, body) or raises a clear error
        naming `shown` (the path the notebook gave), else `path`."""
        container, account, name = self.parse(path)
        setting = f"fs.azure.account.key.{account}{BLOB_HOST_SUFFIX}"
        key = self._conf.get(setting, None)
        if not key:
            raise PermissionError(
                f"{shown or path}: no credentials for the storage account {account}: "
                f'set spark.conf.set("{setting}", <account key>) first (e.g. from dbutils.secrets.get)')
        endpoint = self._endpoints.get(account, f"https://{account}{BLOB_HOST_SUFFIX}").rstrip("/")
        resource = "/" + container + ("/" + urllib.parse.quote(name, safe="/~") if name else "")
        query = dict(query or {})
        url = endpoint + resource + ("?" + urllib.parse.urlencode(sorted(query.items())) if query else "")
        headers = dict(headers or {})
        headers["x-ms-date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
        headers["x-ms-version"] = API_VERSION
        if data is not None:
            headers["Content-Length"] = str(len(data))
            # Else urllib adds a form content type after signing, and the signature fails.
            headers.setdefault("Content-Type", "application/octet-stream")
        headers["Authorization"] = f"SharedKey {account}:{self._sign(account, key, method, endpoint, resource, query, headers)}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            body = error.read()
            if missing_ok and error.code == 404:
                return 404, error.headers, body
            raise storage_error(shown or path, account, setting, method, error.code, error.headers, body) from None
        except urllib.error.URLError as error:
            raise ConnectionError(f"{shown or path}: cannot reach the blob endpoint {endpoint} of account {account}: {error.reason}") from None

    @staticmethod
    def _sign(account, key, method, endpoint, resource, query, headers):
        # The canonicalized resource is the account and the URL's path (for a path-style
        # endpoint such as Azurite's, the path starts with the account again).
        base_path = urllib.parse.urlsplit(endpoint).path
        canonical = f"/{account}{base_path}{resource}"
        for name in sorted(query):
            canonical += f"\n{name.lower()}:{query[name]}"
        x_ms = "".join(f"{k.lower()}:{v}\n" for k, v in sorted(headers.items(), key=lambda kv: kv[0].lower())
                       if k.lower().startswith("x-ms-"))
        h = {k.lower(): v for k, v in headers.items()}
        length = h.get("content-length", "")
        fields = [method, h.get("content-encoding", ""), h.get("content-language", ""),
                  "" if length == "0" else length, h.get("content-md5", ""), h.get("content-type", ""),
                  "", h.get("if-modified-since", ""), h.get("if-match", ""), h.get("if-none-match", ""),
                  h.get("if-unmodified-since", ""), h.get("range", "")]
        to_sign = "\n".join(fields) + "\n" + x_ms + canonical
        try:
            secret = base64.b64decode(key, validate=True)
        except ValueError:
            raise PermissionError(f"the account key of {account} in spark.conf is not base64") from None
        return base64.b64encode(hmac.new(secret, to_sign.encode("utf-8"), hashlib.sha256).digest()).decode()

    def _list(self, path, delimiter):
        """(blobs as (name, size, ms), prefixes) under the folder `path`."""
        container, account, name = self.parse(path)
        prefix = name.rstrip("/") + "/" if name.strip("/") else ""
        blobs, prefixes, marker = [], [], None
        while True:
            query = {"restype": "container", "comp": "list", "prefix": prefix}
            if delimiter:
                query["delimiter"] = "/"
            if marker:
                query["marker"] = marker
            _, _, body = self._request("GET", f"wasbs://{container}@{account}{BLOB_HOST_SUFFIX}/", query,
                                       shown=path)
            root = ElementTree.fromstring(body)
            for blob in root.iter("Blob"):
                props = blob.find("Properties")
                modified = props.findtext("Last-Modified") if props is not None else None
                ms = int(datetime.datetime.strptime(modified, "%a, %d %b %Y %H:%M:%S GMT")
                         .replace(tzinfo=datetime.timezone.utc).timestamp() * 1000) if modified else 0
                size = int(props.findtext("Content-Length") or 0) if props is not None else 0
                blobs.append((blob.findtext("Name"), size, ms))
            prefixes += [p.findtext("Name") for p in root.iter("BlobPrefix")]
            marker = root.findtext("NextMarker")
            if not marker:
                return blobs, prefixes, prefix

    def stat(self, path):
        _, _, name = self.parse(path)
        if name and not name.endswith("/"):
            status, headers, _ = self._request("HEAD", path, missing_ok=True)
            if status != 404:
                modified = headers.get("Last-Modified")
                ms = int(datetime.datetime.strptime(modified, "%a, %d %b %Y %H:%M:%S GMT")
                         .replace(tzinfo=datetime.timezone.utc).timestamp() * 1000) if modified else 0
                return "file", int(headers.get("Content-Length") or 0), ms
        blobs, prefixes, _ = self._list(path, delimiter=True)
        if blobs or prefixes or not name.strip("/"):
            return "dir", 0, 0
        return None

    def read(self, path, limit=None):
        headers = {"x-ms-range": f"bytes=0-{limit - 1}"} if limit else None
        if limit == 0:
            return b""
        _, _, body = self._request("GET", path, headers=headers)
        return body

    def write(self, path, data):
        headers = {"x-ms-blob-type": "BlockBlob"}
        status, _, _ = self._request("PUT", path, data=data, headers=headers, missing_ok=True)
        if status == 404:
            # WASB creates a missing container on the first write, then writes.
            container, account, _ = self.parse(path)
            self._request("PUT", f"wasbs://{container}@{account}{BLOB_HOST_SUFFIX}/", {"restype": "container"},
                          data=b"", shown=path)
            self._request("PUT", path, data=data, headers=headers)

    def list(self, path):
        blobs, prefixes, prefix = self._list(path, delimiter=True)
        infos = [FileInfo(self.url(path, p[len(prefix):]), p[len(prefix):], 0, 0) for p in prefixes]
        infos += [FileInfo(self.url(path, n[len(prefix):]), n[len(prefix):], size, ms) for n, size, ms in blobs]
        return sorted(infos, key=lambda i: i.name)

    def files_under(self, path):
        blobs, _, prefix = self._list(path, delimiter=False)
        return [n[len(prefix):] for n, _, _ in blobs]

    def delete(self, path, recurse):
        kind = self.stat(path)[0]
        if kind == "file":
            self._request("DELETE", path)
            return
        names = self.files_under(path)
        if names and not recurse:
            raise OSError(f"{path} is a non-empty directory: pass recurse=True to remove it")
        for name in names:
            self._request("DELETE", self.url(path, name))


def storage_error(path, account, setting, method, status, headers, body):
    """The exception for an error answer: the service's code and first message line."""
    code, message = headers.get("x-ms-error-code") or "", ""
    try:
        root = ElementTree.fromstring(body) if body else None
        if root is not None:
            code = root.findtext("Code") or code
            message = (root.findtext("Message") or "").splitlines()[0] if root.findtext("Message") else ""
    except ElementTree.ParseError:
        pass
    detail = f"{status} {code}" + (f": {message}" if message else "")
    if status == 404 and code == "ContainerNotFound":
        container = BlobFiles.parse(path)[0]
        return FileNotFoundError(
            f"{path}: the container {container} does not exist in the storage account {account} ({detail})")
    if status == 404:
        return FileNotFoundError(f"{path} does not exist ({detail})")
    if status == 403:
        return PermissionError(
            f"{path}: the storage account {account} refused the request ({detail}); "
            f"check the account key in spark.conf {setting}")
    return OSError(f"{path}: {method} failed ({detail})")


class FsUtils:
    """dbutils.fs: cp, ls, rm, head on file:/ and wasbs:// paths."""

    def __init__(self, conf, endpoints):
        self._local = LocalFiles()
        self._blob = BlobFiles(conf, endpoints)

    def _fs(self, path):
        scheme = urllib.parse.urlsplit(str(path)).scheme.lower()
        if scheme == "file":
            return self._local
        if scheme in ("wasbs", "wasb"):
            return self._blob
        raise NotImplementedError(
            f"{path}: the Databricks emulator's dbutils.fs reaches file:/ and wasbs:// paths only")

    def _stat(self, fs, path):
        found = fs.stat(path)
        if found is None:
            raise FileNotFoundError(f"{path} does not exist")
        return found

    def cp(self, from_, to, recurse=False):
        source, target = self._fs(from_), self._fs(to)
        kind = self._stat(source, from_)[0]
        if kind == "dir":
            if not recurse:
                raise OSError(f"{from_} is a directory: pass recurse=True to copy it")
            for name in source.files_under(from_):
                target.write(target.url(to, name), source.read(source.url(from_, name)))
            return True
        try:
            into_dir = to.endswith("/") or (target.stat(to) or ("",))[0] == "dir"
        except FileNotFoundError:  # no container yet: the write creates it
            into_dir = False
        if into_dir:
            to = target.url(to, str(from_).rstrip("/").rsplit("/", 1)[-1])
        target.write(to, source.read(from_))
        return True

    def ls(self, dir):
        fs = self._fs(dir)
        kind, size, ms = self._stat(fs, dir)
        if kind == "file":
            return [FileInfo(dir, str(dir).rstrip("/").rsplit("/", 1)[-1], size, ms)]
        return fs.list(dir)

    def rm(self, dir, recurse=False):
        fs = self._fs(dir)
        if fs.stat(dir) is None:
            return False
        fs.delete(dir, recurse)
        return True

    def head(self, file, maxBytes=65536):
        fs = self._fs(file)
        kind, size, _ = self._stat(fs, file)
        if kind == "dir":
            raise OSError(f"{file} is a directory")
        if size == 0:  # a range read of an empty blob is refused (416)
            return ""
        return fs.read(file, int(maxBytes)).decode("utf-8", errors="replace")
