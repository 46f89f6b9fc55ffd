package sqs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AWS Signature Version 4, as SDKs sign SQS requests: the Authorization
// header form (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html).
// The facade recomputes the signature from the request and the secret of
// the access key it names, and compares.

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDateForm  = "20060102T150405Z"
	// MaxClockSkew is how far a request's X-Amz-Date may be from the
	// server's clock, either way, as AWS allows.
	MaxClockSkew = 15 * time.Minute
)

// sigRequest is what the Authorization header of a signed request says.
type sigRequest struct {
	accessKey     string
	date          string // the credential scope's date, YYYYMMDD
	region        string
	service       string
	signedHeaders []string // lower case, sorted as signed
	signature     string   // hex
	amzDate       string   // the request's time, YYYYMMDDTHHMMSSZ
}

// parseAuthorization reads the Authorization and date headers of r.
func parseAuthorization(r *http.Request) (*sigRequest, *Error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if r.URL.Query().Get("X-Amz-Algorithm") != "" {
			return nil, newError(errIncompleteSig, "Presigned URLs are not supported: sign the Authorization header.")
		}
		return nil, newError(errMissingAuth, "Request is missing Authentication Token: sign it with AWS Signature Version 4.")
	}
	rest, ok := strings.CutPrefix(auth, sigAlgorithm+" ")
	if !ok {
		return nil, newError(errIncompleteSig, "Only %s signatures are accepted.", sigAlgorithm)
	}
	s := &sigRequest{}
	var credential, signed string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			credential = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			s.signature = v
		}
	}
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[0] == "" || scope[4] != "aws4_request" || signed == "" || s.signature == "" {
		return nil, newError(errIncompleteSig, "Authorization header requires Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders and Signature.")
	}
	s.accessKey, s.date, s.region, s.service = scope[0], scope[1], scope[2], scope[3]
	s.signedHeaders = strings.Split(signed, ";")
	if !slices.Contains(s.signedHeaders, "host") {
		return nil, newError(errIncompleteSig, "The host header must be signed.")
	}
	s.amzDate = r.Header.Get("X-Amz-Date")
	if s.amzDate == "" {
		return nil, newError(errIncompleteSig, "The request must carry an X-Amz-Date header.")
	}
	if !slices.Contains(s.signedHeaders, "x-amz-date") {
		return nil, newError(errIncompleteSig, "The x-amz-date header must be signed.")
	}
	if !strings.HasPrefix(s.amzDate, s.date) {
		return nil, newError(errSignature, "Date in Credential scope does not match the X-Amz-Date header.")
	}
	return s, nil
}

// checkTime refuses a request signed too far from now.
func (s *sigRequest) checkTime(now time.Time) *Error {
	t, err := time.Parse(amzDateForm, s.amzDate)
	if err != nil {
		return newError(errIncompleteSig, "X-Amz-Date %q is not of the form %s.", s.amzDate, amzDateForm)
	}
	if d := now.Sub(t); d > MaxClockSkew || d < -MaxClockSkew {
		return newError(errRequestExpired, "Signature expired: %s is now earlier than %s or later than %s (a clock off by more than %v?).",
			s.amzDate, now.Add(-MaxClockSkew).UTC().Format(amzDateForm), now.Add(MaxClockSkew).UTC().Format(amzDateForm), MaxClockSkew)
	}
	return nil
}

// verify reports whether s signs r and its body with secret, comparing in
// constant time.
func (s *sigRequest) verify(r *http.Request, body []byte, secret string) bool {
	want, err := hex.DecodeString(s.signature)
	if err != nil {
		return false
	}
	return hmac.Equal(s.compute(r, body, secret), want)
}

// compute returns the signature of r and its body under secret.
func (s *sigRequest) compute(r *http.Request, body []byte, secret string) []byte {
	payload := sha256.Sum256(body)
	var b strings.Builder
	b.Grow(512)
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r.URL))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL))
	b.WriteByte('\n')
	for _, name := range s.signedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(headerValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(s.signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(hex.EncodeToString(payload[:]))
	canonical := sha256.Sum256([]byte(b.String()))

	scope := s.date + "/" + s.region + "/" + s.service + "/aws4_request"
	toSign := sigAlgorithm + "\n" + s.amzDate + "\n" + scope + "\n" + hex.EncodeToString(canonical[:])
	key := signingKey(secret, s.date, s.region, s.service)
	return hmacSHA256(key, []byte(toSign))
}

// signingKey derives SigV4's signing key for one day, region and service.
func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte("aws4_request"))
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// headerValue is a signed header's canonical value: its values trimmed,
// inner runs of spaces made one, joined by commas. Go keeps the Host and
// the Content-Length of a request outside its header map.
func headerValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		vals = r.Header.Values("Content-Length")
		if len(vals) == 0 && r.ContentLength >= 0 {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		vals = r.Header.Values(name)
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

// canonicalURI is the path as SigV4 signs it for every service but S3:
// the request's escaped path, escaped once more.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return escape(p, false)
}

// canonicalQuery is the query sorted by name, then value, each escaped.
func canonicalQuery(u *url.URL) string {
	if u.RawQuery == "" {
		return ""
	}
	q := u.Query()
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, escape(k, true)+"="+escape(v, true))
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

// escape is SigV4's URI encoding: every byte but the unreserved ones
// (A-Z a-z 0-9 - _ . ~) as %XX, and / too when encodeSlash.
func escape(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' ||
			c == '/' && !encodeSlash {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}
