package loader_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/spoolrun/spool/loader"
)

// Post is a blog post, as the database holds it.
type Post struct {
	Slug, Title string
}

// Example loads blog posts by slug through a Loader: the first Get of a
// post reads the database, later ones read the cache, and a slug without a
// post is cached as not found.
func Example() {
	db := map[string]Post{"hello-world": {Slug: "hello-world", Title: "Hello, world"}}
	queries := 0
	postBySlug := func(_ context.Context, slug string) (Post, error) {
		queries++ // a slow SELECT ... WHERE slug = $1
		p, ok := db[slug]
		if !ok {
			return Post{}, loader.ErrNotFound
		}
		return p, nil
	}

	posts, err := loader.New(postBySlug, loader.Options[string, Post]{
		TTL:          5 * time.Minute,
		RefreshAfter: 4 * time.Minute,
		StaleFor:     time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer posts.Close()

	ctx := context.Background()
	for range 3 {
		p, err := posts.Get(ctx, "hello-world")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(p.Title)
	}
	for range 2 {
		if _, err := posts.Get(ctx, "no-such-post"); errors.Is(err, loader.ErrNotFound) {
			fmt.Println("404")
		}
	}
	s := posts.Stats()
	fmt.Printf("queries=%d hits=%d misses=%d\n", queries, s.Hits, s.Misses)
	// Output:
	// Hello, world
	// Hello, world
	// Hello, world
	// 404
	// 404
	// queries=2 hits=3 misses=2
}
