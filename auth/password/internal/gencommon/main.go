// Command gencommon writes auth/password/common_passwords.txt, the list of
// common passwords the registration policy refuses.
//
// There was no network access when this list was made, so it is not a dump
// of a breach corpus. It is authored: the base words are passwords that
// every published top-N list of leaked passwords (RockYou, SplashData,
// NordPass, the NCSC top 100k) puts near the top, plus keyboard walks and
// digit runs, expanded with the suffixes, years (1990-2027), doublings and
// "leet" substitutions people use to satisfy length rules. Only entries of at
// least 8 characters are kept (shorter ones fail the length rule anyway).
// Treat it as a floor; a real breach list (for example Have I Been Pwned's
// k-anonymity range API) is the better check when one is available.
//
// Run with go generate ./auth/password, or from the repository root:
// go run ./auth/password/internal/gencommon [output file]
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
)

var bases = strings.Fields(`
123456 password 12345678 qwerty 123456789 12345 1234 111111 1234567 dragon
123123 baseball abc123 football monkey letmein 696969 shadow master 666666
qwertyuiop 123321 mustang 1234567890 michael 654321 superman 1qaz2wsx 7777777
121212 000000 qazwsx 123qwe killer trustno1 jordan jennifer zxcvbnm asdfgh
hunter buster soccer harley batman andrew tigger sunshine iloveyou charlie
robert thomas hockey ranger daniel starwars klaster 112233 george computer
michelle jessica pepper zxcvbn 555555 11111111 131313 freedom 777777 pass
maggie 159753 aaaaaa ginger princess joshua cheese amanda summer love ashley
nicole chelsea biteme matthew access yankees 987654321 dallas austin thunder
taylor matrix minecraft welcome admin login passw0rd whatever donald
qwerty123 1q2w3e4r 1q2w3e4r5t zaq12wsx flower hello loveme hottie lovely
123abc babygirl secret solo azerty rockyou chocolate anthony friends
butterfly purple angel liverpool justin fuckyou samsung google apple
microsoft linkedin facebook twitter adobe photoshop internet changeme
default guest root administrator test demo sample temp temppassword
opensesame monkey jordan23 michael23 lakers cowboys steelers packers eagles
patriots arsenal manchester united barcelona realmadrid juventus chelsea
pokemon naruto sasuke pikachu mario zelda nintendo playstation xbox
starwars skywalker vader yoda gandalf frodo hobbit hogwarts harrypotter
spiderman ironman captain avengers marvel batman1 wolverine hulk thor
summer winter spring autumn monday friday sunday january february march
april august september october november december christmas easter
hello123 welcome1 password1 iloveyou1 princess1 monkey1 dragon1 shadow1
master1 superman1 football1 baseball1 qwerty1 letmein1 abc123456
blink182 metallica nirvana slipknot eminem beatles elvis madonna
jesus jesuschrist god1 godisgood blessed faith heaven angel1 christ
mother father family mommy daddy sister brother baby babyboy babygirl
sweety sweetheart honey sugar cookie cupcake candy chocolate banana
cherry orange lemon strawberry peanut butter coffee pizza hamburger
tiger lion eagle falcon wolf bear shark dolphin horse puppy kitty
kitten doggy bubbles buddy lucky rocky max bailey molly sophie
charlie1 hunter2 jackson hannah jasmine lauren samantha emily
william james david richard joseph christopher daniel1 brandon
joshua1 jonathan nicholas tyler alexander alexandra victoria
elizabeth natalie olivia isabella madison abigail chloe sarah
rachel rebecca stephanie melissa heather amber crystal diamond
silver golden gold money dollar rich cash bitcoin crypto
ninja samurai warrior knight wizard dragon1 phoenix legend hero
killer1 hacker h4x0r 1337 elite leet gamer gaming player
qwe123 asd123 zxc123 qweasd qweasdzxc asdasd zxczxc qwerqwer
asdfasdf asdfghjkl zxcvbnm1 poiuytrewq lkjhgfdsa mnbvcxz
1qaz2wsx3edc 1q2w3e 1q2w3e4r5t6y qazwsxedc qazxswedc zaq1xsw2
1qazxsw2 !qaz2wsx !qaz@wsx qwer1234 1234qwer asdf1234 1234asdf
zxcv1234 qwertyui asdfghjk 0987654321 9876543210 0123456789
1111111111 0000000000 1212121212 1122334455 123123123 12344321
147258369 159357 741852963 789456123 147852369 963852741 123654789
987654 112233445566 11223344 1234512345 123451234 abcdefg abcdefgh
abcdefghij abcd1234 aa123456 a123456 a1b2c3d4 a1b2c3 q1w2e3r4
q1w2e3r4t5 p@ssw0rd p@ssword pa55word pa$$word passwort motdepasse
contrasena senha parola salasana wachtwoord haslo lozinka
iloveu loveyou ilovegod imissyou forever together soulmate
letmeinnow letmein123 changeme123 welcome123 admin123 administrator1
root123 toor guest123 test1234 testing tester user user123 userpass
default123 secret123 private public access14 master123 mypassword
mypass yourpassword nopassword passwordpassword password123 qwerty12345
whatever1 trustme believe freedom1 liberty america usa canada
london paris berlin newyork chicago california texas florida
`)

// phrases are long on their own and are kept as they are, plus suffixes.
var phrases = strings.Fields(`
iloveyouforever letmein! correcthorsebatterystaple thequickbrownfox
opensesame1 ihateyou ilovemyself ilovemymom ilovemydad ilovemywife
ilovemyhusband ilovemykids ilovejesus ilovegod1 jesuslovesme
mypassword1 passwordis password! changemenow welcometo
`)

var suffixes = []string{
	"", "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678",
	"!", "!!", "1!", "12!", "123!", "!1", "@123", "#1", "#123", "01", "007",
	"69", "99", "00", "11", "22", "23", "88", "321", "111", "000", "?", ".",
	"123abc", "abc", "abc123", "qwe", "xyz",
}

func main() {
	seen := map[string]bool{}
	add := func(s string) {
		s = strings.ToLower(s)
		if len(s) >= 8 && len(s) <= 64 {
			seen[s] = true
		}
	}
	var words []string
	words = append(words, bases...)
	words = append(words, phrases...)
	short := []string{"", "1", "12", "123", "1234", "!", "1!", "123!"}
	for _, w := range words {
		for _, s := range suffixes {
			add(w + s)
		}
		for y := 1990; y <= 2027; y++ {
			add(fmt.Sprintf("%s%d", w, y))
		}
		for _, f := range []string{leet(w), w + w, "ilove" + w, "my" + w} {
			for _, s := range short {
				add(f + s)
			}
		}
		add("1" + w)
		add("123" + w)
	}
	// Digit runs and single repeated characters of every length 8..16.
	for n := 8; n <= 16; n++ {
		for _, c := range "0123456789abcdefghijklmnopqrstuvwxyz!*.#" {
			add(strings.Repeat(string(c), n))
		}
		add(("12345678901234567890")[:n])
		add(("01234567890123456789")[:n])
		add(("98765432109876543210")[:n])
		add(("abcdefghijklmnopqrstuvwxyz")[:n])
		add(("qwertyuiopasdfghjklzxcvbnm")[:n])
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	path := "auth/password/common_passwords.txt"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(f)
	for _, s := range out {
		_, _ = fmt.Fprintln(w, s) // the Flush below reports write errors
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gencommon: %d passwords\n", len(out))
}

var leetMap = strings.NewReplacer("a", "@", "o", "0", "e", "3", "i", "1", "s", "$")

func leet(w string) string { return leetMap.Replace(w) }
