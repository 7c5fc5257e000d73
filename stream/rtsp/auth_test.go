package rtsp

import (
	"strings"
	"testing"
)

// TestDigestRFC2617Example computes the response of RFC 2617 §3.5's example.
func TestDigestRFC2617Example(t *testing.T) {
	ch, err := pickChallenge([]string{`Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`})
	if err != nil {
		t.Fatal(err)
	}
	c := &credentials{user: "Mufasa", pass: "Circle Of Life", challenge: ch}
	// The example's cnonce is fixed; compute with it instead of a random one.
	ha1 := hexHash(md5Hash, "Mufasa", "testrealm@host.com", "Circle Of Life")
	ha2 := hexHash(md5Hash, "GET", "/dir/index.html")
	got := hexHash(md5Hash, ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "auth", ha2)
	if got != "6629fae49393a05397450978507c4ef1" {
		t.Fatalf("response %s, RFC 2617 says 6629fae49393a05397450978507c4ef1", got)
	}
	a := c.authorization("GET", "/dir/index.html")
	for _, want := range []string{`username="Mufasa"`, `realm="testrealm@host.com"`, "qop=auth", "nc=00000001", `opaque="5ccc069c403ebaf9f0171e9517f40e41"`, `uri="/dir/index.html"`} {
		if !strings.Contains(a, want) {
			t.Errorf("Authorization %q lacks %s", a, want)
		}
	}
	if a2 := c.authorization("GET", "/dir/index.html"); !strings.Contains(a2, "nc=00000002") {
		t.Errorf("second Authorization %q does not count the nonce up", a2)
	}
}

func TestPickChallenge(t *testing.T) {
	basicOnly, err := pickChallenge([]string{`Basic realm="cam"`})
	if err != nil || basicOnly.Scheme != "Basic" {
		t.Errorf("Basic only: %+v, %v", basicOnly, err)
	}
	both, err := pickChallenge([]string{`Basic realm="cam"`, `Digest realm="cam", nonce="abc"`})
	if err != nil || both.Scheme != "Digest" {
		t.Errorf("Basic and Digest: chose %+v, %v; want Digest", both, err)
	}
	for _, bad := range [][]string{nil, {`Digest realm="x"`}, {`Digest nonce="n", algorithm=SHA-512-256`}, {`Negotiate abc`}, {`Digest realm="unterminated`}} {
		if c, err := pickChallenge(bad); err == nil {
			t.Errorf("%q: chose %+v, want an error", bad, c)
		}
	}
}

func TestBasicAuthorization(t *testing.T) {
	c := &credentials{user: "Aladdin", pass: "open sesame", challenge: Challenge{Scheme: "Basic"}}
	if got := c.authorization("DESCRIBE", "rtsp://x"); got != "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==" {
		t.Errorf("got %q (RFC 7617's example)", got)
	}
}

// TestDigestRFC7616Example computes the responses of RFC 7616 §3.9.1's example, in
// SHA-256 and in MD5.
func TestDigestRFC7616Example(t *testing.T) {
	const (
		nonce  = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
		cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	)
	for algorithm, want := range map[string]string{
		"SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
		"MD5":     "8ca523f5e9506fed4657c9700eebdbec",
	} {
		h, err := digestHash(algorithm)
		if err != nil {
			t.Fatal(err)
		}
		ha1 := hexHash(h, "Mufasa", "http-auth@example.org", "Circle of Life")
		ha2 := hexHash(h, "GET", "/dir/index.html")
		if got := hexHash(h, ha1, nonce, "00000001", cnonce, "auth", ha2); got != want {
			t.Errorf("%s: response %s, RFC 7616 says %s", algorithm, got, want)
		}
	}
}
