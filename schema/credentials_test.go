package schema

import (
	"strings"
	"testing"
)

func TestSecretShaped(t *testing.T) {
	for name, want := range map[string]bool{
		// A secret word as the last segment, as before.
		"GH_TOKEN": true, "OPENAI_API_KEY": true, "DB_PASSWORD": true, "AWS_SECRET": true, "X_PASS": true, "GITLAB_PAT": true,
		"GOOGLE_APPLICATION_CREDENTIALS": true, "TOKEN": true, "key": true, "gh_token": true,
		// Anywhere, plural, glued.
		"APP_SECRETS": true, "SECRET_KEY_BASE": true, "API_KEYS": true, "MY_TOKENS": true, "TOKEN_CONTENTS": true,
		"GITHUBTOKEN": true, "APIKEY": true, "OPENAIAPIKEY": true, "DBPASSWORD": true, "githubToken": true, "AWS_SECRETACCESSKEY": true,
		"SSH_PASSPHRASE": true, "DB_CREDS": true,
		// Where or what a secret is, not the secret.
		"GH_TOKEN_FILE": false, "SSH_KEY_PATH": false, "TOKEN_URL": false, "API_KEY_ID": false, "SECRETS_DIR": false, "TOKEN_TYPE": false,
		// Words that only contain one.
		"KEYBOARD": false, "MONKEY": false, "TURKEY": false, "BYPASS": false, "PASS_THROUGH": false, "PATH": false, "PATCH": false,
		"KEYSTONE": false, "HOME": false, "PWD": false, "": false, "TOKENIZER": false,
	} {
		if got := SecretShaped(name); got != want {
			t.Errorf("SecretShaped(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestSecretValueShape(t *testing.T) {
	for value, want := range map[string]string{
		"gh" + "p_jackinTestNotReal0":       "GitHub token",
		"token: gh" + "s_jackinTest":        "GitHub token",
		"github" + "_pat_11AAjackin_test":   "GitHub token",
		"sk" + "-jackinTestNotReal4abcdefg": "API key (sk-...)",
		"sk" + "-proj-abc":                  "OpenAI API key",
		"sk" + "_live_jackinTest6":          "Stripe secret key",
		"sk" + "-ant-api03-x":               "Anthropic API key",
		"AK" + "IAJACKINTESTNOTREA":         "AWS access key ID",
		"xo" + "xp-1234-abcd":               "Slack token",
		"-----BEGIN RSA PRIVATE" + " KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----": "private key",
		"https://ann:s3cret" + "@git.example.com/repo.git":                          "URL with a password",
		"redis://:pw" + "@cache:6379":                                               "URL with a password",
		// Benign.
		"https://auth.example.com/token":           "",
		"ssh://git@github.com/a/b":                 "",
		"redis://app:$REDIS_PASSWORD@cache":        "",
		"disk-usage-report-for-every-volume-2024":  "",
		"sk-learn-is-a-python-library-for-ml-work": "",
		"the sk- prefix":                           "",
		"ghp_":                                     "",
		"AKIA":                                     "",
		"-----BEGIN CERTIFICATE-----":              "",
		"http://[::1]:8080/x":                      "",
		"mailto:ann@example.com":                   "",
	} {
		if got := SecretValueShape(value); got != want {
			t.Errorf("SecretValueShape(%q) = %q, want %q", value, got, want)
		}
	}
}

func TestRedactSecretValues(t *testing.T) {
	in := "push to https://ann:s3cret" + "@git.example.com failed with gh" + "p_jackinTestNotReal0 and xo" + "xb-12-ab, -----BEGIN EC PRIVATE" + " KEY-----\nMHc\n-----END EC PRIVATE KEY----- end"
	got := RedactSecretValues(in, "[R]")
	if want := "push to https://[R]@git.example.com failed with [R] and [R], [R] end"; got != want {
		t.Fatalf("RedactSecretValues:\n got %q\nwant %q", got, want)
	}
	if plain := "op: not signed in; sk-learn-is-a-python-library-for-ml-work"; RedactSecretValues(plain, "[R]") != plain {
		t.Fatalf("RedactSecretValues changed benign text: %q", RedactSecretValues(plain, "[R]"))
	}
	if strings.Contains(got, "s3cret") {
		t.Fatal("leak")
	}
}
