// gonet: a statically linked Go program (CGO_ENABLED=0) for netcell's tests. Go
// makes its system calls itself, from many threads, with no libc: only the seccomp
// shim can redirect it.
//
//	gonet serve ADDR          HTTP server: answers "go <path> from <peer>"
//	gonet get URL...          HTTP GETs, one line per body
//	gonet lookup NAME         resolves NAME with Go's own resolver
//	gonet parallel URL N      N concurrent GETs; prints "ok N" when all succeed
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func get(c *http.Client, url string) (string, error) {
	r, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return strings.TrimSpace(string(b)), err
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: gonet serve ADDR | get URL... | lookup NAME | parallel URL N")
		os.Exit(2)
	}
	c := &http.Client{Timeout: 20 * time.Second}
	switch os.Args[1] {
	case "serve":
		l, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "listen:", err)
			os.Exit(1)
		}
		fmt.Println("listening", l.Addr())
		http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "go %s from %s\n", r.URL.Path, r.RemoteAddr)
		}))
	case "get":
		for _, u := range os.Args[2:] {
			body, err := get(c, u)
			if err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
			fmt.Println(body)
		}
	case "lookup":
		r := &net.Resolver{PreferGo: true}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		addrs, err := r.LookupHost(ctx, os.Args[2])
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(addrs, " "))
	case "parallel":
		n, _ := strconv.Atoi(os.Args[3])
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []string
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := get(c, os.Args[2]); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			fmt.Println("errors:", errs)
			os.Exit(1)
		}
		fmt.Println("ok", n)
	default:
		os.Exit(2)
	}
}
