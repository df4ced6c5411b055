package schema

// GitHub is how jackin asks GitHub the state of issue and pull request
// links (fleet-level github). The token is read on the host from Token
// when jackin asks; it is never delivered to an agent nor written.
type GitHub struct {
	Token CredentialSource `json:"token"`
	// APIURL is the REST API's base URL; "" is github.com's.
	APIURL string `json:"apiURL,omitempty"`
}

// Tool is an operator tool (fleet-level tools): Exec runs on the host,
// Prompt is typed into an idle agent. Exactly one is set.
type Tool struct {
	Name string `json:"name"`
	// Key is the console key bound to it ("" none).
	Key    string   `json:"key,omitempty"`
	Exec   []string `json:"exec,omitempty"`
	Prompt string   `json:"prompt,omitempty"`
}

// Handlers open things on the operator's machine (fleet-level handlers):
// argv without a shell, "{path}" and "{url}" replaced.
type Handlers struct {
	Review []string `json:"review,omitempty"`
	Web    []string `json:"web,omitempty"`
}

// ConsoleKeys are the keys the console uses itself; a tool's key is none
// of them.
const ConsoleKeys = "aegGjklqrov"

// MaxPrompt bounds a prompt tool's text (the supervisor's limit).
const MaxPrompt = 64 << 10
