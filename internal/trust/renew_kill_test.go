package trust

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/internal/selfexec"
	"lifeline/internal/wait"
)

// The kill test runs this test binary as a box that renews its certificate over and
// over, printing a line for each renewal, and kills it with SIGKILL at a random moment:
// whatever step of a renewal that hits, the box must come back with a working identity.
const renewChildEnv = "LIFELINE_RENEW_KILL_CHILD" // "DIR URL"

func TestMain(m *testing.M) {
	selfexec.Main(m, map[string]selfexec.Role{renewChildEnv: renewForever})
}

func renewForever(spec string) int {
	dir, url, ok := strings.Cut(spec, " ")
	if !ok {
		fmt.Fprintln(os.Stderr, "want DIR URL in", renewChildEnv)
		return 2
	}
	for {
		id, err := Renew(context.Background(), url, dir)
		if err != nil {
			fmt.Println("error", err)
			continue
		}
		fmt.Println("renewed", id.Leaf.SerialNumber.Text(16))
	}
}

// TestRenewalSurvivesSIGKILL kills a renewing box at random moments; after each kill
// the box's identity loads and the hub accepts it, at once or after the one renewal
// the box's service makes at start when it finds a renewal unfinished.
func TestRenewalSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes")
	}
	h := startHub(t)
	dir := enrolBox(t, h, "AMB-0199")
	for round := range 6 {
		cmd := selfexec.Command(renewChildEnv, dir+" "+h.url)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1000)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		want, renewed := 1+round%3, 0
		wait.For(t, 30*time.Second, fmt.Sprintf("round %d: %d renewals by the child", round, want), func() bool {
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("round %d: the child ended", round)
					}
					if strings.HasPrefix(l, "error") {
						t.Fatalf("round %d: child: %s", round, l)
					}
					renewed++
				default:
					return renewed >= want
				}
			}
		})
		time.Sleep(time.Duration(rand.IntN(20_000)) * time.Microsecond) // a random point inside the next renewal
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		id, err := LoadIdentity(dir)
		if err != nil {
			t.Fatalf("round %d: identity after SIGKILL: %v", round, err)
		}
		if status, _ := whoami(t, h, id); status != http.StatusOK {
			if !RenewalPending(dir) {
				t.Fatalf("round %d: the hub refuses the box (%d) and no renewal is pending to recover", round, status)
			}
			if id, err = Renew(context.Background(), h.url, dir); err != nil {
				t.Fatalf("round %d: recovering renewal: %v", round, err)
			}
			if status, _ := whoami(t, h, id); status != http.StatusOK {
				t.Fatalf("round %d: box after the recovering renewal: %d", round, status)
			}
			t.Logf("round %d: killed after the hub renewed, before the box stored it; recovered", round)
		}
	}
}
