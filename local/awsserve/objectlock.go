package awsserve

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Object Lock retention modes
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-overview.html).
const (
	LockGovernance = "GOVERNANCE"
	LockCompliance = "COMPLIANCE"
)

// Retention is a bucket's Object Lock default retention: each new object version is locked
// in Mode for Days from its creation.
type Retention struct {
	Mode string
	Days int
}

func (r Retention) validate() error {
	if (r.Mode != LockGovernance && r.Mode != LockCompliance) || r.Days <= 0 {
		return fmt.Errorf("awsserve: Object Lock default retention needs mode GOVERNANCE or COMPLIANCE and days > 0, got %q, %d", r.Mode, r.Days)
	}
	return nil
}

// objectLock enforces S3 Object Lock in front of gofakes3, which stores a PutObject's
// x-amz-object-lock-* headers but enforces none of them, for the buckets created with Object
// Lock. It does what AWS documents for a bucket with a default retention
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-overview.html):
//
//   - versioning is on and cannot be suspended (InvalidBucketState);
//   - PutObject needs Content-MD5 or an x-amz-checksum-* header (or trailer), else 400
//     InvalidRequest (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html);
//   - each new version gets the default retention unless the PUT names its own;
//   - DeleteObject of a locked version (with versionId) is refused with 403 AccessDenied;
//     a GOVERNANCE lock yields to x-amz-bypass-governance-retention: true, COMPLIANCE to
//     nothing (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html); a
//     DeleteObject without versionId only adds a delete marker, as on AWS. DeleteObjects
//     naming a locked version is refused as a whole (AWS reports it per key);
//   - GetObjectLockConfiguration (GET ?object-lock) and GetObjectRetention (GET ?retention)
//     are answered (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectLockConfiguration.html).
//
// If-None-Match: * on an existing key (412 PreconditionFailed,
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html) is
// gofakes3's own. Not modelled: CopyObject and multipart uploads into a locked bucket get no
// default retention, legal holds, PutObjectRetention and PutObjectLockConfiguration.
type objectLock struct {
	next    http.Handler
	buckets map[string]Retention
	now     func() time.Time

	mu    sync.Mutex
	locks map[versionRef]lock
	// latest is the newest version the shim locked, by bucket and key.
	latest map[[2]string]string
}

type versionRef struct{ bucket, key, version string }

type lock struct {
	mode  string
	until time.Time
}

const (
	hdrLockMode      = "X-Amz-Object-Lock-Mode"
	hdrLockUntil     = "X-Amz-Object-Lock-Retain-Until-Date"
	hdrBypass        = "X-Amz-Bypass-Governance-Retention"
	hdrVersionID     = "X-Amz-Version-Id"
	lockConfigXMLNS  = "http://s3.amazonaws.com/doc/2006-03-01/"
	checksumHdrStart = "x-amz-checksum-"
)

func (o *objectLock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	ret, locked := o.buckets[bucket]
	switch {
	case !locked:
		o.next.ServeHTTP(w, r)
	case key == "":
		o.serveBucket(w, r, bucket, ret)
	default:
		o.serveObject(w, r, bucket, key, ret)
	}
}

// serveBucket serves the bucket sub-resources Object Lock changes.
func (o *objectLock) serveBucket(w http.ResponseWriter, r *http.Request, bucket string, ret Retention) {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && q.Has("object-lock"):
		o.writeXML(w, struct {
			XMLName xml.Name `xml:"ObjectLockConfiguration"`
			XMLNS   string   `xml:"xmlns,attr"`
			Enabled string   `xml:"ObjectLockEnabled"`
			Mode    string   `xml:"Rule>DefaultRetention>Mode"`
			Days    int      `xml:"Rule>DefaultRetention>Days"`
		}{XMLNS: lockConfigXMLNS, Enabled: "Enabled", Mode: ret.Mode, Days: ret.Days})
	case r.Method == http.MethodPut && q.Has("versioning"):
		o.putVersioning(w, r)
	case r.Method == http.MethodPost && q.Has("delete"):
		o.deleteObjects(w, r, bucket)
	default:
		o.next.ServeHTTP(w, r)
	}
}

// serveObject serves the object operations Object Lock changes.
func (o *objectLock) serveObject(w http.ResponseWriter, r *http.Request, bucket, key string, ret Retention) {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && q.Has("retention"):
		o.getRetention(w, bucket, key, q.Get("versionId"))
	case r.Method == http.MethodPut && !q.Has("uploadId") && r.Header.Get("X-Amz-Copy-Source") == "":
		o.putObject(w, r, bucket, key, ret)
	case r.Method == http.MethodDelete && q.Get("versionId") != "":
		if why := o.mayDelete(bucket, key, q.Get("versionId"), r.Header); why != "" {
			writeS3Error(w, http.StatusForbidden, "AccessDenied", why)
			return
		}
		o.next.ServeHTTP(w, r)
	default:
		o.next.ServeHTTP(w, r)
	}
}

// putObject refuses a PUT without an integrity header, applies the default retention when
// the request names none, and records the lock of the version S3 created.
func (o *objectLock) putObject(w http.ResponseWriter, r *http.Request, bucket, key string, ret Retention) {
	if !hasChecksum(r.Header) {
		writeS3Error(w, http.StatusBadRequest, "InvalidRequest",
			"Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters")
		return
	}
	l := lock{mode: r.Header.Get(hdrLockMode)}
	if l.mode == "" {
		l = lock{mode: ret.Mode, until: o.now().UTC().AddDate(0, 0, ret.Days)}
		r.Header.Set(hdrLockMode, l.mode)
		r.Header.Set(hdrLockUntil, l.until.Format(time.RFC3339))
	} else {
		until, err := time.Parse(time.RFC3339, r.Header.Get(hdrLockUntil))
		if err != nil || (l.mode != LockGovernance && l.mode != LockCompliance) {
			writeS3Error(w, http.StatusBadRequest, "InvalidArgument", "x-amz-object-lock-mode and x-amz-object-lock-retain-until-date must name a mode and an ISO 8601 date")
			return
		}
		l.until = until
	}
	rec := &versionRecorder{ResponseWriter: w}
	o.next.ServeHTTP(rec, r)
	// gofakes3 answers a successful PUT with headers only: no status written is 200.
	if v := rec.Header().Get(hdrVersionID); (rec.status == 0 || rec.status == http.StatusOK) && v != "" {
		o.mu.Lock()
		o.locks[versionRef{bucket, key, v}] = l
		o.latest[[2]string{bucket, key}] = v
		o.mu.Unlock()
	}
}

// hasChecksum reports Content-MD5 or a flexible checksum, sent as a header or announced as
// a trailer (x-amz-trailer: x-amz-checksum-crc32, …).
func hasChecksum(h http.Header) bool {
	if h.Get("Content-Md5") != "" || strings.HasPrefix(strings.ToLower(h.Get("X-Amz-Trailer")), checksumHdrStart) {
		return true
	}
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), checksumHdrStart) && name != "X-Amz-Checksum-Type" {
			return true
		}
	}
	return false
}

// mayDelete returns why the version may not be deleted now, or "".
func (o *objectLock) mayDelete(bucket, key, version string, h http.Header) string {
	o.mu.Lock()
	l, ok := o.locks[versionRef{bucket, key, version}]
	o.mu.Unlock()
	switch {
	case !ok || !o.now().Before(l.until):
		return ""
	case l.mode == LockGovernance && strings.EqualFold(h.Get(hdrBypass), "true"):
		return ""
	}
	return "Access Denied because object protected by object lock."
}

// deleteObjects serves DeleteObjects (POST ?delete): refused as a whole when it names a
// locked version, else passed on with its body.
func (o *objectLock) deleteObjects(w http.ResponseWriter, r *http.Request, bucket string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeS3Error(w, http.StatusBadRequest, "MalformedXML", "read request body")
		return
	}
	var req struct {
		Objects []struct {
			Key       string `xml:"Key"`
			VersionID string `xml:"VersionId"`
		} `xml:"Object"`
	}
	if err := xml.Unmarshal(body, &req); err != nil {
		writeS3Error(w, http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.")
		return
	}
	for _, obj := range req.Objects {
		if obj.VersionID == "" {
			continue
		}
		if why := o.mayDelete(bucket, obj.Key, obj.VersionID, r.Header); why != "" {
			writeS3Error(w, http.StatusForbidden, "AccessDenied", why)
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	o.next.ServeHTTP(w, r)
}

// putVersioning refuses to suspend versioning: a bucket with Object Lock keeps it on.
func (o *objectLock) putVersioning(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeS3Error(w, http.StatusBadRequest, "MalformedXML", "read request body")
		return
	}
	if bytes.Contains(body, []byte("Suspended")) {
		writeS3Error(w, http.StatusConflict, "InvalidBucketState", "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	o.next.ServeHTTP(w, r)
}

// getRetention serves GetObjectRetention for a version (or the latest the shim locked).
func (o *objectLock) getRetention(w http.ResponseWriter, bucket, key, version string) {
	o.mu.Lock()
	if version == "" {
		version = o.latest[[2]string{bucket, key}]
	}
	l, ok := o.locks[versionRef{bucket, key, version}]
	o.mu.Unlock()
	if !ok {
		writeS3Error(w, http.StatusNotFound, "NoSuchObjectLockConfiguration", "The specified object does not have a ObjectLock configuration")
		return
	}
	o.writeXML(w, struct {
		XMLName xml.Name `xml:"Retention"`
		XMLNS   string   `xml:"xmlns,attr"`
		Mode    string   `xml:"Mode"`
		Until   string   `xml:"RetainUntilDate"`
	}{XMLNS: lockConfigXMLNS, Mode: l.mode, Until: l.until.Format(time.RFC3339)})
}

func (o *objectLock) writeXML(w http.ResponseWriter, v any) {
	out, err := xml.Marshal(v)
	if err != nil {
		writeS3Error(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write(append([]byte(xml.Header), out...))
}

// versionRecorder notes the status gofakes3 answers a PUT with.
type versionRecorder struct {
	http.ResponseWriter
	status int
}

func (v *versionRecorder) WriteHeader(code int) {
	if v.status == 0 {
		v.status = code
	}
	v.ResponseWriter.WriteHeader(code)
}

func (v *versionRecorder) Write(b []byte) (int, error) {
	if v.status == 0 {
		v.status = http.StatusOK
	}
	return v.ResponseWriter.Write(b)
}
