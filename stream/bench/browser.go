package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"lifeline/internal/linkemu"
)

// browser is headless Chromium as an ED doctor's screen, on the hub's side of the link:
// in the hub's namespace when there is a link. chromedp talks to it over a pipe, which
// crosses namespaces where a DevTools port would not.
type browser struct {
	dir     string
	tab     context.Context
	cancels []context.CancelFunc
}

func (s *system) startBrowser() (*browser, error) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		return nil, fmt.Errorf("chromium: %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-chromium-")
	if err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.UserDataDir(dir), chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.IgnoreCertErrors,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns,Translate"),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true))
	if s.link != nil {
		ns := s.link.Namespace(linkemu.Hub)
		ip, err := exec.LookPath("ip")
		if err != nil {
			return nil, err
		}
		opts = append(opts, chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// ip netns exec execs Chromium in place: the pipe's descriptors pass through.
			cmd.Args = append([]string{"ip", "netns", "exec", ns, cmd.Path}, cmd.Args[1:]...)
			cmd.Path = ip
		}))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	b := &browser{dir: dir, tab: tab, cancels: []context.CancelFunc{cancelTab, cancelAlloc}}
	if err := chromedp.Do(tab); err != nil {
		b.close()
		return nil, fmt.Errorf("start chromium: %w", err)
	}
	return b, nil
}

func (b *browser) close() {
	for _, c := range b.cancels {
		c()
	}
	os.RemoveAll(b.dir)
}

// eval runs js in the tab, awaiting a promise, and decodes its value.
func eval[T any](b *browser, js string) (T, error) {
	return chromedp.Run(b.tab, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// signInDoctor adds a doctor to the hub, opens a one-time sign-in link in the browser
// and waits until the session holds, as a doctor at the ED would.
func (s *system) signInDoctor(b *browser) error {
	add := s.command(linkemu.Hub, "hub", "user", "add", "--user", "bench.dr", "--name", "Bench", "--role", "doctor", "--config", s.hubConf, "--data", s.hubData)
	add.Stdin = strings.NewReader("bench password long enough\n")
	if out, err := add.CombinedOutput(); err != nil {
		return fmt.Errorf("hub user add: %v: %s", err, out)
	}
	out, err := s.command(linkemu.Hub, "hub", "user", "link", "--user", "bench.dr", "--config", s.hubConf, "--data", s.hubData).Output()
	if err != nil {
		return fmt.Errorf("hub user link: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	// The link's page signs in and moves on to the ED screen at once, which can abort
	// the navigation's own load: whether it worked is what whoami says.
	_ = chromedp.Do(b.tab, chromedp.Navigate(lines[len(lines)-1]))
	return waitFor(20*time.Second, "the doctor signed in", func() bool {
		user, err := eval[string](b, `fetch("/api/v1/whoami").then(r => r.ok ? r.json().then(w => w.user) : "")`)
		return err == nil && user == "bench.dr"
	})
}
