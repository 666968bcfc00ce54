package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// recordingBackend keeps the last request the handler passed on.
type recordingBackend struct {
	fakeBackend
	add *PortRequest
	gc  *GCRequest
}

func (b *recordingBackend) AddPort(req PortRequest) (Port, bool, error) {
	b.add = &req
	return Port{}, false, Invalid("ip", "refused by the test")
}

func (b *recordingBackend) GC(req GCRequest) GCResult {
	b.gc = &req
	return GCResult{}
}

// FuzzRequestBodies: whatever the body of POST /v1/ports or /v1/gc, the
// answer is not a 5xx; a body the handler passes on is one JSON object of
// known fields and nothing after it, decoded as a strict decoder decodes it
// on its own; any other body is a 400 with a JSON error.
func FuzzRequestBodies(f *testing.F) {
	f.Add(`{"containerID": "c1", "ifName": "eth0", "netns": "/x", "ip": "10.244.0.7", "bandwidth": {"ingressRate": 1}}`)
	f.Add(`{"valid": [{"containerID": "c1", "ifName": "eth0"}]}`)
	f.Add(`{"containerID": "c1"} {"containerID": "c2"}`)
	f.Add(`{"surprise": true}`)
	f.Add(`null`)
	f.Add(" \n")
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/ports", "/v1/gc"} {
			b := &recordingBackend{fakeBackend: fakeBackend{ports: map[Attachment]Port{}}}
			w := httptest.NewRecorder()
			NewHandler(b).ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, bytes.NewReader([]byte(body))))
			if w.Code >= 500 {
				t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body)
			}
			var got, want any
			if path == "/v1/ports" {
				got, want = b.add, new(PortRequest)
			} else {
				got, want = b.gc, new(GCRequest)
			}
			if reflect.ValueOf(got).IsNil() {
				var e Error
				if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Code != CodeInvalid {
					t.Fatalf("POST %s %q refused with %d %s, want a 400 invalid", path, body, w.Code, w.Body)
				}
				continue
			}
			dec := json.NewDecoder(bytes.NewReader([]byte(body)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(want); err != nil {
				t.Fatalf("POST %s %q passed on, but a strict decoder refuses it: %v", path, body, err)
			}
			if _, err := dec.Token(); err != io.EOF {
				t.Fatalf("POST %s %q passed on with data after the JSON value", path, body)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("POST %s %q passed on %+v, want %+v", path, body, got, want)
			}
		}
	})
}
