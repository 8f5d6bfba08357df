package auth

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	t0     = time.Unix(1_800_000_000, 0)
)

func TestMintVerify(t *testing.T) {
	tok, err := Mint(secret, "r1", "alice", RoleCaller, 10*time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(secret, tok, "r1", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c.Room != "r1" || c.Subject != "alice" || c.Role != RoleCaller {
		t.Fatalf("claims %+v", c)
	}
}

func TestVerifyRefuses(t *testing.T) {
	good, _ := Mint(secret, "r1", "alice", "", 10*time.Minute, t0)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Room: "r1", RegisteredClaims: jwt.RegisteredClaims{Subject: "a"}}).SignedString(secret)
	noSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Room: "r1", RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour))}}).SignedString(secret)
	badRole, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Room: "r1", Role: "admin", RegisteredClaims: jwt.RegisteredClaims{Subject: "a", ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour))}}).SignedString(secret)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, Claims{Room: "r1", RegisteredClaims: jwt.RegisteredClaims{Subject: "a", ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour))}}).SignedString(secret)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{Room: "r1", RegisteredClaims: jwt.RegisteredClaims{Subject: "a", ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour))}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]
	for _, tc := range []struct {
		name, token, room string
		secret            []byte
		now               time.Time
		want              error
	}{
		{"missing", "", "r1", secret, t0, ErrMissing},
		{"garbage", "a.b.c", "r1", secret, t0, ErrInvalid},
		{"other secret", good, "r1", []byte("another secret, just as long...."), t0, ErrInvalid},
		{"tampered", tampered, "r1", secret, t0, ErrInvalid},
		{"expired", good, "r1", secret, t0.Add(11 * time.Minute), ErrExpired},
		{"not yet valid", good, "r1", secret, t0.Add(-time.Minute), ErrExpired},
		{"wrong room", good, "r2", secret, t0, ErrWrongRoom},
		{"no expiry", noExp, "r1", secret, t0, ErrInvalid},
		{"no subject", noSub, "r1", secret, t0, ErrInvalid},
		{"unknown role", badRole, "r1", secret, t0, ErrInvalid},
		{"HS512", hs512, "r1", secret, t0, ErrInvalid},
		{"alg none", none, "r1", secret, t0, ErrInvalid},
		{"too long", strings.Repeat("a", MaxTokenBytes+1), "r1", secret, t0, ErrInvalid},
	} {
		if _, err := Verify(tc.secret, tc.token, tc.room, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: want %v, got %v", tc.name, tc.want, err)
		}
	}
	// Within the leeway an expired token still passes.
	if _, err := Verify(secret, good, "r1", t0.Add(10*time.Minute+Leeway/2)); err != nil {
		t.Errorf("within leeway: %v", err)
	}
}

func TestMintRefuses(t *testing.T) {
	for _, tc := range []struct {
		secret              []byte
		room, subject, role string
		ttl                 time.Duration
	}{
		{nil, "r", "s", "", time.Minute},
		{secret, "", "s", "", time.Minute},
		{secret, "r", "", "", time.Minute},
		{secret, "r", "s", "", 0},
		{secret, "r", "s", "boss", time.Minute},
	} {
		if _, err := Mint(tc.secret, tc.room, tc.subject, tc.role, tc.ttl, t0); err == nil {
			t.Errorf("%+v: no error", tc)
		}
	}
}

func FuzzVerify(f *testing.F) {
	good, _ := Mint(secret, "r1", "alice", RoleAnswerer, time.Hour, t0)
	for _, s := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", good + "x", strings.Repeat(".", 10)} {
		f.Add(s, "r1")
	}
	f.Fuzz(func(t *testing.T, token, room string) {
		c, err := Verify(secret, token, room, t0)
		if err == nil && (c.Room != room || c.Subject == "") {
			t.Fatalf("accepted %q for %q: %+v", token, room, c)
		}
		if err != nil && !errors.Is(err, ErrMissing) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrWrongRoom) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

func TestMetaClaim(t *testing.T) {
	meta := json.RawMessage(`{"ring":"bob","device":"phone"}`)
	tok, err := MintMeta(secret, "r1", "alice", "", meta, time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(secret, tok, "r1", t0)
	if err != nil || string(c.Meta) != string(meta) {
		t.Fatalf("claims %+v, %v; want meta %s", c, err, meta)
	}
	if _, err := MintMeta(secret, "r1", "alice", "", json.RawMessage(`[1]`), time.Minute, t0); !errors.Is(err, ErrBadMeta) {
		t.Fatalf("MintMeta with an array: %v, want ErrBadMeta", err)
	}
}

func TestVerifyRefusesBadMeta(t *testing.T) {
	big := `{"x":"` + strings.Repeat("a", MaxMetaBytes) + `"}`
	for name, meta := range map[string]string{
		"oversized": big, "array": `[1,2]`, "string": `"bob"`, "number": `7`, "null": `null`,
	} {
		t.Run(name, func(t *testing.T) {
			// Signed directly: Mint itself refuses these.
			tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Room: "r1", Meta: json.RawMessage(meta),
				RegisteredClaims: jwt.RegisteredClaims{Subject: "a", ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour))}}).SignedString(secret)
			_, err := Verify(secret, tok, "r1", t0)
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrBadMeta) {
				t.Fatalf("got %v, want ErrInvalid and ErrBadMeta", err)
			}
		})
	}
	// Exactly at the bound passes.
	exact := `{"x":"` + strings.Repeat("a", MaxMetaBytes-8) + `"}`
	tok, _ := MintMeta(secret, "r1", "alice", "", json.RawMessage(exact), time.Minute, t0)
	if _, err := Verify(secret, tok, "r1", t0); err != nil {
		t.Fatalf("meta of %d bytes: %v", len(exact), err)
	}
}
