package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"lifeline/appliance"
	"lifeline/dicom/transfer"
)

const defaultEdgeData = "/var/lib/lifeline/edge"

func init() {
	registerCommand("edge", "run the box (ambulance or clinic); 'edge enroll' gets it an identity from its hub, 'edge renew' a new certificate; "+
		"'edge dead-letters' and 'edge retry' handle what the hub refused", runEdge)
}

func runEdge(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "enroll":
			return runEdgeEnrol(args[1:])
		case "renew":
			return runEdgeRenew(args[1:]) // edge_renew.go
		case "dead-letters":
			return runEdgeDeadLetters(args[1:])
		case "retry":
			return runEdgeRetry(args[1:])
		}
	}
	fs := newFlags("edge", "edge [--config FILE] [--data DIR]\n"+
		"       lifeline edge enroll|renew|dead-letters|retry -h   for enrolment, renewal and the dead-letter list")
	configPath := fs.String("config", "", "TOML configuration `file` (default: built-in defaults, loopback only)")
	dataDir := fs.String("data", defaultEdgeData, "`directory` for all of the box's state")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := appliance.LoadEdgeConfig(*configPath)
	if err != nil {
		return fail(os.Stderr, "edge", err)
	}
	log := appliance.NewLogger(cfg.Log, os.Stderr)
	edge, err := appliance.OpenEdge(cfg, *dataDir, version, log)
	if err != nil {
		return fail(os.Stderr, "edge", err)
	}
	ctx, stop := signalContext()
	defer stop()
	if err := edge.Run(ctx); err != nil {
		return fail(os.Stderr, "edge", err)
	}
	log.Info("box stopped")
	return exitOK
}

func runEdgeEnrol(args []string) int {
	fs := newFlags("edge enroll", "edge enroll --code CODE [--hub URL] [--config FILE] [--data DIR]")
	configPath := fs.String("config", "", "TOML configuration `file`; its hub.url is used unless --hub is given")
	hubURL := fs.String("hub", "", "the hub's `URL`, e.g. https://hub.example:8443")
	code := fs.String("code", "", "the one-time enrolment `code` printed by 'lifeline hub enroll'")
	dataDir := fs.String("data", defaultEdgeData, "`directory` for all of the box's state")
	if status, ok := parseFlags(fs, args); !ok {
		return status
	}
	if *code == "" {
		fmt.Fprintln(os.Stderr, "lifeline edge enroll: --code is required")
		return exitUsage
	}
	cfg, err := appliance.LoadEdgeConfig(*configPath)
	if err != nil {
		return fail(os.Stderr, "edge enroll", err)
	}
	if *hubURL == "" {
		*hubURL = cfg.Hub.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := appliance.EdgeEnrol(ctx, *hubURL, *code, *dataDir)
	if err != nil {
		return fail(os.Stderr, "edge enroll", err)
	}
	fmt.Printf("enrolled as %s with hub %s; certificate valid until %s\n", id.DeviceID, *hubURL, id.Leaf.NotAfter.Format("2006-01-02"))
	return exitOK
}

// boxAPI talks to a running box's HTTP API, on loopback where the box listens on every
// address.
type boxAPI struct {
	base   string
	client *http.Client
}

func newBoxAPI(configPath string) (*boxAPI, error) {
	cfg, err := appliance.LoadEdgeConfig(configPath)
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen %q: %w", cfg.HTTP.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return &boxAPI{base: "http://" + net.JoinHostPort(host, port), client: &http.Client{Timeout: 10 * time.Second}}, nil
}

// call sends a request with a JSON body (or none) and decodes the JSON answer into out,
// turning the box's error answers into errors that say what the box said.
func (b *boxAPI) call(method, path string, out any) error {
	var body io.Reader
	if method == http.MethodPost {
		body = bytes.NewReader([]byte("{}"))
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("the box at %s does not answer (is 'lifeline edge' running?): %w", b.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, b.base+path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var ae appliance.APIError
		if json.Unmarshal(raw, &ae) == nil && ae.Error != "" {
			return errors.New(ae.Error)
		}
		return fmt.Errorf("%s %s: %s", method, b.base+path, resp.Status)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: unreadable answer: %w", method, b.base+path, err)
	}
	return nil
}

func (b *boxAPI) deadLetters() ([]transfer.DeadLetter, error) {
	var dls []transfer.DeadLetter
	return dls, b.call(http.MethodGet, appliance.DeadLettersPath, &dls)
}

func (b *boxAPI) retry(sop string) error {
	var ans appliance.RetryAnswer
	return b.call(http.MethodPost, appliance.DeadLettersPath+"/"+url.PathEscape(sop)+"/retry", &ans)
}

func runEdgeDeadLetters(args []string) int {
	fs := newFlags("edge dead-letters", "edge dead-letters [--config FILE]")
	configPath := fs.String("config", "", "the running box's TOML configuration `file` (for http.listen)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	box, err := newBoxAPI(*configPath)
	if err != nil {
		return fail(os.Stderr, "edge dead-letters", err)
	}
	dls, err := box.deadLetters()
	if err != nil {
		return fail(os.Stderr, "edge dead-letters", err)
	}
	if len(dls) == 0 {
		fmt.Println("no dead letters: no instance is waiting for an operator")
		return exitOK
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SOP INSTANCE UID\tSTUDY\tSINCE\tREASON")
	for _, dl := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", dl.SOPInstanceUID, dl.StudyUID, dl.At.Local().Format(time.DateTime), dl.Reason)
	}
	tw.Flush()
	fmt.Printf("%d instance(s) block their study; 'lifeline edge retry SOP' or 'lifeline edge retry --all' sends them again\n", len(dls))
	return exitOK
}

func runEdgeRetry(args []string) int {
	fs := newFlags("edge retry", "edge retry [--config FILE] (--all | SOP_INSTANCE_UID...)")
	configPath := fs.String("config", "", "the running box's TOML configuration `file` (for http.listen)")
	all := fs.Bool("all", false, "retry every instance on the dead-letter list")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	sops := fs.Args()
	for _, sop := range sops {
		if len(sop) > 1 && sop[0] == '-' {
			fmt.Fprintf(os.Stderr, "lifeline edge retry: flags go before the SOP Instance UIDs (%q came after)\n", sop)
			return exitUsage
		}
	}
	if *all == (len(sops) > 0) {
		fmt.Fprintln(os.Stderr, "lifeline edge retry: give either --all or the SOP Instance UIDs to retry ('lifeline edge dead-letters' lists them)")
		return exitUsage
	}
	box, err := newBoxAPI(*configPath)
	if err != nil {
		return fail(os.Stderr, "edge retry", err)
	}
	if *all {
		dls, err := box.deadLetters()
		if err != nil {
			return fail(os.Stderr, "edge retry", err)
		}
		if len(dls) == 0 {
			fmt.Println("no dead letters to retry")
			return exitOK
		}
		for _, dl := range dls {
			sops = append(sops, dl.SOPInstanceUID)
		}
	}
	status := exitOK
	for _, sop := range sops {
		if err := box.retry(sop); err != nil {
			status = fail(os.Stderr, "edge retry "+sop, err)
			continue
		}
		fmt.Printf("retried %s: it is sent to the hub again\n", sop)
	}
	return status
}
