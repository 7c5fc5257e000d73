package signin

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultHashVerifies(t *testing.T) {
	start := time.Now()
	hash, err := HashPassword("correct horse battery", PasswordParams{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("argon2id m=64MiB t=3 p=4 took %v", time.Since(start))
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Fatalf("hash %q does not state the default parameters", hash)
	}
	if ok, err := verifyPassword("correct horse battery", hash); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, _ := verifyPassword("correct horse batterY", hash); ok {
		t.Fatal("wrong password accepted")
	}
	again, _ := HashPassword("correct horse battery", PasswordParams{})
	if again == hash {
		t.Fatal("two hashes of one password are equal: no fresh salt")
	}
}

// TestKnownHash checks the encoding against a hash made by another implementation:
// the reference argon2 CLI's output for "password" with salt "somesalt".
func TestKnownHash(t *testing.T) {
	const ref = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	if ok, err := verifyPassword("password", ref); !ok || err != nil {
		t.Fatalf("reference hash: %v %v", ok, err)
	}
}

func TestPasswordHashRefused(t *testing.T) {
	for _, bad := range []string{
		"",
		"password",
		"$argon2i$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=16$m=65536,t=3,p=4$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=4194304,t=3,p=4$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", // 4 GiB
		"$argon2id$v=19$m=65536,t=300,p=4$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$t=3,m=65536,p=4$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=3,p=4$c29t$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$CTFh",
		"$argon2id$v=19$m=0,t=3,p=4$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
	} {
		if err := CheckPasswordHash(bad); err == nil {
			t.Errorf("hash %q accepted", bad)
		}
	}
	if err := CheckPasswordPolicy("short"); err == nil {
		t.Error("a 5-character password accepted")
	}
	if err := CheckPasswordPolicy(strings.Repeat("长", 10)); err != nil {
		t.Errorf("ten Chinese characters: %v", err)
	}
}

// FuzzParsePasswordHash feeds the parser what the admin socket or a damaged state
// could hold: it must not panic, and what it accepts must be within the bounds and
// encode back to the same string.
func FuzzParsePasswordHash(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePasswordHash(s)
		if err != nil {
			return
		}
		if h.params.Memory > maxMemoryKiB || h.params.Time > maxTime || h.params.Threads > maxThreads || h.params.Memory == 0 {
			t.Fatalf("accepted parameters beyond the bounds: %+v", h.params)
		}
		if enc := encodeHash(h.params, h.salt, h.key); enc != s {
			t.Fatalf("accepted %q, which encodes back as %q", s, enc)
		}
	})
}
