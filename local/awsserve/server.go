package awsserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// X-Amz-Target prefixes: the service shape names of the Smithy models.
const (
	TargetSecretsManager = "secretsmanager"
	TargetECS            = "AmazonEC2ContainerServiceV20141113"
	TargetStepFunctions  = "AWSStepFunctions"
)

// Options say what a Server serves. Every backend is optional.
type Options struct {
	// SecretsManager, ECS and StepFunctions are the local models (*localsecrets.Store,
	// *localecs.ECS, *sfnlocal.Machine, or anything with SDK-shaped methods): each method
	// with the signature of the SDK client's method of the same name is served.
	SecretsManager any
	ECS            any
	StepFunctions  any
	// Lambda maps function names to handlers for Invoke.
	Lambda map[string]LambdaHandler
	// LambdaTags are the tags GetFunction returns, by function name (a function of Lambda).
	LambdaTags map[string]map[string]string
	// Buckets are created, empty, in the in-memory S3 at start.
	Buckets []string
	// ObjectLock are buckets created, empty, with Object Lock (versioning on) and the
	// given default retention, which the server enforces (objectlock.go).
	ObjectLock map[string]Retention
	// Now is the clock Object Lock retention is reckoned by; default time.Now.
	Now func() time.Time
	// Region and Account appear in the ARNs the server makes itself (Lambda's
	// ResourceNotFoundException). Defaults "us-east-1" and "000000000000".
	Region, Account string
	// AccessKeyID, if set, is the only access key whose requests are served: requests
	// signed with another key (the SigV4 Authorization header's credential), or unsigned,
	// are refused as AWS refuses an unknown key. Signatures are not verified.
	AccessKeyID string
	// Addr is the loopback address to listen on; default 127.0.0.1:0 (a free port).
	Addr string
}

// Server is the loopback endpoint. Create it with Start, stop it with Close.
type Server struct {
	json    map[string]*jsonService // by X-Amz-Target prefix
	lambdas map[string]LambdaHandler
	// lambdaTags are GetFunction's tags, by function name.
	lambdaTags map[string]map[string]string
	s3         http.Handler
	region     string
	account    string
	akid       string
	url        string
	srv        *http.Server

	ctx    context.Context // cancelled by Close: ends Event invocations
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start builds the server and serves it on a loopback listener until Close.
func Start(opts Options) (*Server, error) {
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(host).IsLoopback() {
		return nil, fmt.Errorf("awsserve: address %q is not a loopback IP and port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("awsserve: listen: %w", err)
	}
	s.url = "http://" + ln.Addr().String()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return s, nil
}

func newServer(opts Options) (*Server, error) {
	s := &Server{
		json:       map[string]*jsonService{},
		lambdas:    map[string]LambdaHandler{},
		lambdaTags: map[string]map[string]string{},
		region:     opts.Region,
		account:    opts.Account,
		akid:       opts.AccessKeyID,
	}
	if s.region == "" {
		s.region = "us-east-1"
	}
	if s.account == "" {
		s.account = "000000000000"
	}
	services := []struct {
		backend         any
		target, version string
		sdkPkg          string
		name            func(string) string
	}{
		{opts.SecretsManager, TargetSecretsManager, "1.1", pkgOf[secretsmanager.Options](), nil},
		{opts.ECS, TargetECS, "1.1", pkgOf[ecs.Options](), nil},
		{opts.StepFunctions, TargetStepFunctions, "1.0", pkgOf[sfn.Options](), lowerFirst},
	}
	for _, svc := range services {
		if svc.backend == nil {
			continue
		}
		js, err := newJSONService(svc.target, svc.version, svc.sdkPkg, svc.name, svc.backend)
		if err != nil {
			return nil, err
		}
		s.json[svc.target] = js
	}
	for name, h := range opts.Lambda {
		if h == nil {
			return nil, fmt.Errorf("awsserve: nil Lambda handler for %s", name)
		}
		s.lambdas[name] = h
	}
	for name, tags := range opts.LambdaTags {
		if _, ok := s.lambdas[name]; !ok {
			return nil, fmt.Errorf("awsserve: tags for %s, which is not a served function", name)
		}
		s.lambdaTags[name] = tags
	}
	s3, err := newS3(opts)
	if err != nil {
		return nil, err
	}
	s.s3 = s3
	return s, nil
}

// newS3 is the in-memory S3 with the buckets of opts, behind the Object Lock shim.
func newS3(opts Options) (http.Handler, error) {
	backend := s3mem.New()
	for _, b := range opts.Buckets {
		if err := backend.CreateBucket(b); err != nil {
			return nil, fmt.Errorf("awsserve: create bucket %s: %w", b, err)
		}
	}
	shim := &objectLock{buckets: map[string]Retention{}, now: opts.Now, locks: map[versionRef]lock{}, latest: map[[2]string]string{}}
	if shim.now == nil {
		shim.now = time.Now
	}
	for name, ret := range opts.ObjectLock {
		if err := ret.validate(); err != nil {
			return nil, err
		}
		// https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-overview.html:
		// Object Lock works only in a versioned bucket and turns versioning on.
		err := backend.CreateBucket(name)
		if err == nil {
			err = backend.SetVersioningConfiguration(name, gofakes3.VersioningConfiguration{Status: gofakes3.VersioningEnabled})
		}
		if err != nil {
			return nil, fmt.Errorf("awsserve: create bucket %s with Object Lock: %w", name, err)
		}
		shim.buckets[name] = ret
	}
	shim.next = gofakes3.New(backend).Server()
	return shim, nil
}

func pkgOf[T any]() string { return reflect.TypeFor[T]().PkgPath() }

// URL is the endpoint, http://127.0.0.1:PORT: the value for AWS_ENDPOINT_URL or an SDK
// client's BaseEndpoint.
func (s *Server) URL() string { return s.url }

// Region is the region the server names in the ARNs it makes.
func (s *Server) Region() string { return s.region }

// Operations lists the operations served for an X-Amz-Target prefix (TargetECS, …).
func (s *Server) Operations(target string) []string {
	if js, ok := s.json[target]; ok {
		return js.operations()
	}
	return nil
}

// Close stops serving, waits for in-flight requests and background invocations, and
// returns. The backends are the caller's to close.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	s.cancel()
	s.wg.Wait()
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	return err
}

// ServeHTTP routes a request by its shape: X-Amz-Target to the awsJson services, the Lambda
// path to Invoke, and everything else to S3.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cred := parseCredential(r.Header.Get("Authorization"))
	target := r.Header.Get("X-Amz-Target")
	lambda := strings.HasPrefix(r.URL.Path, lambdaPrefix)
	if s.akid != "" && cred.accessKeyID != s.akid {
		if target == "" && !lambda {
			writeS3Error(w, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
			return
		}
		writeJSONError(w, "application/json", http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	switch {
	case target != "":
		svc, op, ok := splitTarget(target)
		js := s.json[svc]
		if !ok || js == nil {
			writeJSONError(w, "application/x-amz-json-1.1", http.StatusBadRequest, "UnknownOperationException", "unknown target "+target)
			return
		}
		js.serve(w, r, op)
	case lambda:
		s.serveLambda(w, r)
	case cred.service != "" && cred.service != "s3":
		writeJSONError(w, "application/json", http.StatusBadRequest, "UnknownOperationException",
			fmt.Sprintf("service %s is not served here", cred.service))
	default:
		s.s3.ServeHTTP(w, r)
	}
}

// credential is the credential scope of a SigV4 Authorization header,
// "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=…, Signature=…"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-signing-elements.html).
type credential struct {
	accessKeyID, region, service string
}

func parseCredential(auth string) credential {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return credential{}
	}
	scope, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(strings.TrimSpace(scope), "/")
	if len(parts) != 5 {
		return credential{}
	}
	return credential{accessKeyID: parts[0], region: parts[2], service: parts[3]}
}

// writeS3Error sends an S3 REST-XML error
// (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
func writeS3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}
