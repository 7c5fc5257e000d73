package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"lifeline/appliance"
	"lifeline/internal/signin"
)

const defaultHubData = "/var/lib/lifeline/hub"

func init() {
	registerCommand("hub", "run the hospital hub; 'hub enroll|revoke|devices' manage its boxes, 'hub user' its viewers, 'hub viewer-token' lets a WHEP player watch one box", runHub)
}

func runHub(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "enroll", "revoke", "devices":
			return runHubAdmin(args[0], args[1:])
		case "user":
			return runHubUser(args[1:])
		case "viewer-token":
			return runHubViewerToken(args[1:])
		}
	}
	fs := newFlags("hub", "hub [--config FILE] [--data DIR]")
	configPath := fs.String("config", "", "TOML configuration `file` (default: built-in defaults, loopback only)")
	dataDir := fs.String("data", defaultHubData, "`directory` for all of the hub's state")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := appliance.LoadHubConfig(*configPath)
	if err != nil {
		return fail(os.Stderr, "hub", err)
	}
	log := appliance.NewLogger(cfg.Log, os.Stderr)
	hub, err := appliance.OpenHub(cfg, *dataDir, version, log)
	if err != nil {
		return fail(os.Stderr, "hub", err)
	}
	ctx, stop := signalContext()
	defer stop()
	if err := hub.Run(ctx); err != nil {
		return fail(os.Stderr, "hub", err)
	}
	log.Info("hub stopped")
	return exitOK
}

func runHubAdmin(op string, args []string) int {
	usage := "hub " + op + " --device ID [--config FILE] [--data DIR]"
	if op == "devices" {
		usage = "hub devices [--config FILE] [--data DIR]"
	}
	fs := newFlags("hub "+op, usage)
	configPath := fs.String("config", "", "TOML configuration `file`")
	dataDir := fs.String("data", defaultHubData, "the hub's data `directory`")
	device := fs.String("device", "", "the box's device `ID`, e.g. AMB-0001")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if op != "devices" && *device == "" {
		fmt.Fprintf(os.Stderr, "lifeline hub %s: --device is required\n", op)
		return exitUsage
	}
	cfg, err := appliance.LoadHubConfig(*configPath)
	if err != nil {
		return fail(os.Stderr, "hub "+op, err)
	}
	admin := appliance.HubAdmin{DataDir: *dataDir, Lifetime: cfg.Enrol.CodeLifetime.Duration, State: cfg.State, Log: appliance.NewLogger(cfg.Log, os.Stderr)}
	switch op {
	case "enroll":
		code, err := admin.Enrol(*device)
		if err != nil {
			return fail(os.Stderr, "hub enroll", err)
		}
		fmt.Printf("enrolment code for %s, valid once until %s; on the box run:\n", code.Device, code.Expires.Format("2006-01-02 15:04 MST"))
		fmt.Printf("  lifeline edge enroll --hub https://HUB:PORT --code %s\n", code.Code)
		fmt.Println(code.Code)
	case "revoke":
		if err := admin.Revoke(*device); err != nil {
			return fail(os.Stderr, "hub revoke", err)
		}
		fmt.Printf("revoked %s: its certificate is refused from now on\n", *device)
	case "devices":
		devs, err := admin.Devices()
		if err != nil {
			return fail(os.Stderr, "hub devices", err)
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(devs)
	}
	return exitOK
}

// userCommands are the subcommands of `lifeline hub user`.
var userCommands = map[string]string{
	"add":     "hub user add --user ID --name NAME --role doctor|observer|admin [--lang zh-CN|en] [--config FILE] [--data DIR]",
	"passwd":  "hub user passwd --user ID [--config FILE] [--data DIR]",
	"disable": "hub user disable --user ID [--config FILE] [--data DIR]",
	"enable":  "hub user enable --user ID [--config FILE] [--data DIR]",
	"list":    "hub user list [--config FILE] [--data DIR]",
	"link":    "hub user link --user ID [--config FILE] [--data DIR]",
}

// runHubUser manages the people who may sign in to the hub's viewer. A password is
// read from the terminal without echo, or from standard input when it is not a
// terminal (one line), never from the command line, where other users of the machine
// could read it in the process list.
func runHubUser(args []string) int {
	if len(args) == 0 || userCommands[args[0]] == "" {
		fmt.Fprintln(os.Stderr, "usage: lifeline hub user add|passwd|disable|enable|list|link …")
		for _, op := range []string{"add", "passwd", "disable", "enable", "list", "link"} {
			fmt.Fprintln(os.Stderr, "  lifeline "+userCommands[op])
		}
		return exitUsage
	}
	op := args[0]
	fs := newFlags("hub user "+op, userCommands[op])
	configPath := fs.String("config", "", "TOML configuration `file`")
	dataDir := fs.String("data", defaultHubData, "the hub's data `directory`")
	user := fs.String("user", "", "the account's user `name`, e.g. dr.li")
	name := fs.String("name", "", "the person's display `name`, e.g. 李医生")
	role := fs.String("role", "", "doctor (watch, talk, request a 12-lead), observer (watch) or admin")
	lang := fs.String("lang", signin.LanguageChinese, "the viewer's `language`: zh-CN or en")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	if op != "list" && *user == "" {
		fmt.Fprintf(os.Stderr, "lifeline hub user %s: --user is required\n", op)
		return exitUsage
	}
	cfg, err := appliance.LoadHubConfig(*configPath)
	if err != nil {
		return fail(os.Stderr, "hub user "+op, err)
	}
	admin := appliance.HubAdmin{DataDir: *dataDir, Viewer: cfg.Viewer, State: cfg.State, Log: appliance.NewLogger(cfg.Log, os.Stderr)}
	switch op {
	case "add":
		err = addUser(admin, signin.NewUser{ID: *user, Name: *name, Role: *role, Language: *lang})
	case "passwd":
		var hash string
		if hash, err = readPasswordHash(*user); err == nil {
			err = admin.SetPassword(*user, hash)
		}
		if err == nil {
			fmt.Printf("password of %s changed; its sessions have ended\n", *user)
		}
	case "disable", "enable":
		if err = admin.SetDisabled(*user, op == "disable"); err == nil {
			fmt.Printf("%sd %s\n", op, *user)
		}
	case "list":
		err = listUsers(admin)
	case "link":
		var link signin.LinkToken
		if link, err = admin.SignInLink(*user); err == nil {
			fmt.Printf("one-time sign-in link for %s, valid once until %s:\n", link.User, link.Expires.Local().Format("2006-01-02 15:04 MST"))
			fmt.Println(appliance.SignInLinkURL(cfg.ViewerURL(), link))
		}
	}
	if err != nil {
		return fail(os.Stderr, "hub user "+op, err)
	}
	return exitOK
}

func addUser(admin appliance.HubAdmin, u signin.NewUser) error {
	// Check everything but the password before asking for it.
	for _, err := range []error{signin.CheckUserID(u.ID), signin.CheckDisplayName(u.Name), signin.CheckRole(u.Role), signin.CheckLanguage(u.Language)} {
		if err != nil {
			return err
		}
	}
	hash, err := readPasswordHash(u.ID)
	if err != nil {
		return err
	}
	u.PasswordHash = hash
	if err := admin.AddUser(u); err != nil {
		return err
	}
	fmt.Printf("added %s (%s, %s, %s)\n", u.ID, u.Name, u.Role, u.Language)
	return nil
}

func listUsers(admin appliance.HubAdmin) error {
	users, err := admin.Users()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "USER\tNAME\tROLE\tLANGUAGE\tSTATE\tCHANGED")
	for _, u := range users {
		state := "enabled"
		if u.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Name, u.Role, u.Language, state, u.Changed.Local().Format("2006-01-02 15:04"))
	}
	return w.Flush()
}

// readPasswordHash reads a new password for user and hashes it here, so that only
// the hash reaches the hub.
func readPasswordHash(user string) (string, error) {
	pw, err := readNewPassword(user)
	if err != nil {
		return "", err
	}
	return signin.HashPassword(pw, signin.PasswordParams{})
}

// readNewPassword asks twice on a terminal, with echo off; from a pipe it takes the
// first line.
func readNewPassword(user string) (string, error) {
	fd := int(os.Stdin.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		line, err := bufio.NewReaderSize(io.LimitReader(os.Stdin, signin.MaxPasswordLen+2), signin.MaxPasswordLen+2).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the password from standard input: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		return pw, signin.CheckPasswordPolicy(pw)
	}
	first, err := promptSilently(fd, "new password for "+user+": ")
	if err != nil {
		return "", err
	}
	if err := signin.CheckPasswordPolicy(first); err != nil {
		return "", err
	}
	again, err := promptSilently(fd, "the same again: ")
	if err != nil {
		return "", err
	}
	if again != first {
		return "", errors.New("the two passwords differ; nothing changed")
	}
	return first, nil
}

// promptSilently reads one line from the terminal fd with echo off, restoring the
// terminal afterwards.
func promptSilently(fd int, prompt string) (string, error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", fmt.Errorf("turn off the terminal's echo: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(os.Stderr, prompt)
	line, err := bufio.NewReaderSize(io.LimitReader(os.Stdin, signin.MaxPasswordLen+2), 64).ReadString('\n')
	fmt.Fprintln(os.Stderr)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// runHubViewerToken prints a WHEP URL and a short-lived bearer token with which any
// standard WHEP player, or a hospital system, can watch one box's live stream.
func runHubViewerToken(args []string) int {
	fs := newFlags("hub viewer-token", "hub viewer-token --device ID [--for NAME] [--ttl 1h] [--config FILE] [--data DIR]")
	configPath := fs.String("config", "", "TOML configuration `file`")
	dataDir := fs.String("data", defaultHubData, "the hub's data `directory`")
	device := fs.String("device", "", "the box's device `ID`, e.g. AMB-0001")
	subject := fs.String("for", "", "who will watch, for the audit `trail` (default: who runs the command)")
	ttl := fs.Duration("ttl", appliance.DefaultViewerTokenLifetime, "how long the token works, at most 24h")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *device == "" {
		fmt.Fprintln(os.Stderr, "lifeline hub viewer-token: --device is required")
		return exitUsage
	}
	cfg, err := appliance.LoadHubConfig(*configPath)
	if err != nil {
		return fail(os.Stderr, "hub viewer-token", err)
	}
	admin := appliance.HubAdmin{DataDir: *dataDir, Viewer: cfg.Viewer, State: cfg.State, Log: appliance.NewLogger(cfg.Log, os.Stderr)}
	tok, err := admin.ViewerToken(*device, *subject, *ttl, cfg.ViewerURL())
	if err != nil {
		return fail(os.Stderr, "hub viewer-token", err)
	}
	fmt.Printf("watch %s until %s with any WHEP player:\n", tok.Device, tok.Expires.Format("2006-01-02 15:04 MST"))
	fmt.Printf("  WHEP URL: %s\n", tok.WHEPURL)
	fmt.Printf("  header:   Authorization: Bearer <the token on the last line>\n")
	fmt.Println(tok.Token)
	return exitOK
}
