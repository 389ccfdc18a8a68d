/**
 * Realistic chat texts, one per kind the token estimate must handle, for calibrating it against a real tokenizer
 * (tests/history.test.ts). Written for this purpose; none is copied from anywhere.
 */
export const TOKEN_SAMPLES: Readonly<Record<string, string>> = {
  'english prose': `When we moved the service from a single virtual machine to a small cluster, the hardest part was not the
migration itself but deciding what "done" meant. The old machine had grown for six years: cron jobs nobody
remembered writing, a log directory that filled the disk every few months, and a configuration file with more
comments than settings. We started by writing down every request the service answered in a week, grouped by path
and by caller, and it turned out that three endpoints carried ninety percent of the traffic. Those three we moved
first, behind a load balancer that could send a fraction of the requests to the new cluster and the rest to the old
machine. For two weeks we compared the answers side by side. Most differences were harmless (timestamps, the order
of keys in a JSON object), but two were real bugs that had been hiding in the old code for years, and one was a bug
we had just introduced. By the time we switched the last endpoint over, nobody was nervous anymore, which is
exactly how a migration should end.`,
  'english chat': `hey, quick question: I'm trying to get my React app to talk to the chat API but every request comes back
with a 403. I've set PUBLIC_URL to my Vercel domain and it still doesn't work. What am I missing? Also, is there a
way to see which origin it thinks I'm calling from? thanks!!`,
  markdown: `## How to fix it

1. Open your project settings and find **Environment Variables**.
2. Add \`ALLOWED_ORIGINS\` with your app's exact origin, for example \`https://app.example.com\`.
3. Redeploy: variables are read when the function starts, so a running instance won't see the change.

> Tip: outside production the error message names the origin that was refused, so check it there first.

| Setting | Example |
|---|---|
| \`PUBLIC_URL\` | \`https://chat.example.com\` |
| \`ALLOWED_ORIGINS\` | \`https://*.example.com\` |

If it still fails, look at the \`error_detail\` field of the log line: it says which setting would let the origin in.`,
  typescript: `export async function fetchWithRetry(url: string, init: RequestInit = {}, attempts = 3): Promise<Response> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
      if (res.status >= 500 && attempt < attempts) {
        await new Promise((resolve) => setTimeout(resolve, 2 ** attempt * 100));
        continue;
      }
      return res;
    } catch (error) {
      lastError = error;
      if (!(error instanceof TypeError)) throw error;
    }
  }
  throw new Error(\`fetch failed after \${attempts} attempts\`, { cause: lastError });
}

const users = new Map<string, { name: string; roles: readonly string[] }>();
users.set('u_1', { name: 'Ada', roles: ['admin', 'editor'] });`,
  python: `import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Inventory:
    items: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, count: int = 1) -> None:
        if count <= 0:
            raise ValueError(f"count must be positive, got {count}")
        self.items[name] = self.items.get(name, 0) + count

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.items, indent=2, sort_keys=True))


if __name__ == "__main__":
    inv = Inventory()
    for line in Path("orders.txt").read_text().splitlines():
        name, _, count = line.partition(",")
        inv.add(name.strip(), int(count or 1))
    inv.save(Path("inventory.json"))`,
  json: `{"id":"evt_01HZX3K9P2","type":"order.updated","created":1718035200,"data":{"order":{"id":"ord_8842",
"status":"shipped","currency":"EUR","total":12950,"items":[{"sku":"TSHIRT-BLK-M","qty":2,"price":2500},
{"sku":"MUG-WHT","qty":1,"price":1450},{"sku":"POSTER-A2","qty":3,"price":2500}],"shipping":{"carrier":"dhl",
"tracking":"JD014600003828473","address":{"name":"Maria Rossi","line1":"Via Roma 12","city":"Torino",
"postal_code":"10121","country":"IT"}},"metadata":{"campaign":"summer-sale","coupon":null,"gift":false}}},
"livemode":true,"request":{"id":"req_7Hq2","idempotency_key":"b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"}}`,
  chinese: `我们把服务从一台虚拟机迁移到一个小集群时，最难的部分不是迁移本身，而是确定什么才算“完成”。旧机器运行了六年：
没人记得写过的定时任务、每隔几个月就把磁盘写满的日志目录，还有一个注释比配置项还多的配置文件。我们先把一周内服务回答的每个请求
按路径和调用方分组记录下来，结果发现三个接口承担了百分之九十的流量。我们先迁移了这三个接口，放在一个负载均衡器后面，
它可以把一部分请求发到新集群，其余的仍然发到旧机器。两周里我们逐一比较两边的回答。大多数差异无关紧要，比如时间戳和键的顺序，
但有两个是藏在旧代码里多年的真实错误，还有一个是我们刚刚引入的。`,
  japanese: `サービスを一台の仮想マシンから小さなクラスタに移したとき、いちばん難しかったのは移行そのものではなく、
何をもって「完了」とするかを決めることでした。古いマシンは六年かけて育ってきました。誰も書いた覚えのないcronジョブ、
数か月ごとにディスクをいっぱいにするログのディレクトリ、そして設定よりもコメントのほうが多い設定ファイル。まず一週間分のリクエストを
パスと呼び出し元ごとに書き出してみると、三つのエンドポイントがトラフィックの九割を占めていることがわかりました。`,
  korean: `서비스를 가상 머신 한 대에서 작은 클러스터로 옮길 때 가장 어려웠던 것은 이전 작업 자체가 아니라 무엇을 "완료"로 볼지
정하는 일이었습니다. 오래된 서버는 6년 동안 자라 왔습니다. 아무도 작성한 기억이 없는 크론 작업, 몇 달마다 디스크를 가득 채우는
로그 디렉터리, 그리고 설정보다 주석이 더 많은 설정 파일이 있었습니다.`,
  emoji: `omg yes!!! 🎉🎉🎉 we shipped it 🚀 thank you all 🙏❤️ the team was amazing 👏👏 
next sprint: fix the flaky tests 😅 and maybe sleep 😴💤 
👩‍💻👨‍💻 pairing tomorrow at 10? ✅ works for me 👍🏽 
🍕 or 🍣 for lunch? 🤔 vote below ⬇️ 🇮🇹 🇯🇵`,
  'german and french': `Wir haben den Dienst von einer einzelnen virtuellen Maschine auf einen kleinen Cluster umgezogen. Das
Schwierigste war nicht die Migration selbst, sondern festzulegen, wann sie als abgeschlossen gilt. Quand nous avons
déplacé le service vers un petit cluster, la partie la plus difficile n'était pas la migration elle-même, mais de
décider ce que « terminé » voulait dire. Les différences étaient pour la plupart sans importance.`,
  russian: `Когда мы переносили сервис с одной виртуальной машины на небольшой кластер, самым трудным оказалась не сама
миграция, а решение о том, что считать её завершением. Старая машина росла шесть лет: задания cron, которые никто не
помнил, каталог журналов, заполнявший диск каждые несколько месяцев, и файл настроек, в котором комментариев было больше,
чем самих настроек.`,
  'numbers and ids': `Invoice 2024-0042 from 2024-03-15: 3 x 19.99 EUR, 1 x 249.00 EUR, shipping 4.95 EUR, VAT 19% = 61.26 EUR,
total 383.18 EUR. Order ids: 88412, 88413, 90017. Call +49 30 1234567 or use ticket #A7F3-99C2-0B1E. Coordinates
52.5200, 13.4050; build 1.24.3-rc.2 (commit 9f8e7d6c5b4a).`,
};

/**
 * Written after the estimate was calibrated and never used to tune it: its error on these is the honest one.
 * The last two are adversarial (no words at all), there to show where an estimate without a vocabulary breaks down.
 */
export const HELD_OUT_SAMPLES: Readonly<Record<string, string>> = {
  'english answer': `Short answer: yes, but not the way you tried. The \`useEffect\` runs after every render because its
dependency array contains an object that is created anew on each render, so React sees a "new" value every time.
Move the object out of the component, wrap it in \`useMemo\`, or depend on the primitive fields you actually read
(\`user.id\` instead of \`user\`). If the effect fetches data, also return a cleanup that aborts the request, otherwise
a slow response for an old id can overwrite the newer one. That race is the bug you described in your second message.`,
  spanish: `Hola, ¿me puedes ayudar a escribir un correo para mi jefe? Necesito pedirle dos días libres la próxima semana
porque mi hermana se casa en Sevilla y tengo que viajar el jueves por la mañana. Quiero que suene educado pero no
demasiado formal, y me gustaría ofrecerle terminar el informe trimestral antes de irme.`,
  sql: `SELECT c.id, c.name, COUNT(o.id) AS orders, SUM(o.total_cents) / 100.0 AS revenue
FROM customers AS c
LEFT JOIN orders AS o ON o.customer_id = c.id AND o.created_at >= NOW() - INTERVAL '90 days'
WHERE c.country IN ('DE', 'AT', 'CH') AND c.deleted_at IS NULL
GROUP BY c.id, c.name
HAVING COUNT(o.id) > 2
ORDER BY revenue DESC
LIMIT 50;`,
  'log lines': `2024-06-11T08:14:02.331Z INFO  [http] GET /api/users/4821 200 12ms ua="Mozilla/5.0" ip=198.51.100.23
2024-06-11T08:14:02.517Z WARN  [db] slow query (812ms): SELECT * FROM sessions WHERE user_id = $1
2024-06-11T08:14:03.004Z ERROR [worker] job 77f1c0 failed: ECONNRESET after 3 retries (queue=emails)
2024-06-11T08:14:03.120Z INFO  [http] POST /api/login 401 4ms ua="curl/8.5.0" ip=203.0.113.9`,
  yaml: `services:
  api:
    image: ghcr.io/example/api:1.8.2
    ports: ["8080:8080"]
    environment:
      DATABASE_URL: postgres://app:secret@db:5432/app
      LOG_LEVEL: info
    depends_on: [db]
  db:
    image: postgres:16
    volumes:
      - pgdata:/var/lib/postgresql/data
volumes:
  pgdata: {}`,
  html: `<nav class="navbar navbar-expand-lg">
  <a class="navbar-brand" href="/">Acme</a>
  <ul class="navbar-nav">
    <li class="nav-item active"><a class="nav-link" href="/pricing">Pricing</a></li>
    <li class="nav-item"><a class="nav-link" href="/docs">Docs</a></li>
  </ul>
  <button type="button" onclick="toggleMenu()" aria-label="Open menu">☰</button>
</nav>`,
  'chinese chat': `你好！我想问一下，这个接口为什么总是返回429？我每分钟只发了十几个请求，应该没有超过限制吧。另外，
返回的头里有一个 Retry-After，我应该等多久再重试？谢谢 🙏`,
  arabic: `مرحبا، أريد أن أعرف كيف يمكنني تغيير كلمة المرور الخاصة بحسابي. حاولت من صفحة الإعدادات لكن الزر لا يعمل،
وتظهر رسالة خطأ تقول إن الجلسة انتهت. هل هناك طريقة أخرى؟`,
  'base64 blob': `iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAAGXRFWHRTb2Z0d2FyZQBBZG9iZSBJbWFnZVJlYWR5ccllPAAAAQ1JREFUeNqkU8
ENgjAUfS0sYOIG7uAIrqILuIILqHcHMe4gNzfQKxKqJuNpAPGv8h+JA5hRjhSm9/76X/ooQ/+jl3Vt2SDdvM6ybNvvzh6T7A8Zm7jpn3x0q1`,
  'hex and uuids': `a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d 7c9e6679-7425-40de-944b-e07fc1f90ae7 sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
0x7fffffffffff 0xdeadbeef 0x1f3fd`,
};
