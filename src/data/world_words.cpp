// Comparison problems and word problems (templates over names, objects and quantities).
#include <algorithm>
#include <string>

#include "data/world_kinds.hpp"

namespace r1 {
namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

Problem comparison(Language l, std::string prompt, std::vector<std::string> steps, std::string answer, std::string key) {
  Problem p;
  p.kind = ProblemKind::comparison;
  p.language = l;
  p.prompt = std::move(prompt);
  p.solution_steps = std::move(steps);
  p.answer = std::move(answer);
  p.instance_key = "comparison:" + key;
  return p;
}

std::string which_larger(Draw& d, Language l, const std::string& a, const std::string& b) {
  const std::vector<std::string> en{"Which is larger, " + a + " or " + b + "?", "Which number is greater: " + a + " or " + b + "?"};
  const std::vector<std::string> es{"¿Cuál es mayor, " + a + " o " + b + "?", "¿Qué número es más grande: " + a + " o " + b + "?"};
  return d.pick(l == Language::en ? en : es);
}

// Orders `count` distinct numbers in [1, top] from smallest to largest.
Problem order_numbers(Draw& d, Language l, std::int64_t count, std::int64_t top) {
  const bool en = l == Language::en;
  std::vector<std::int64_t> v;
  while (static_cast<std::int64_t>(v.size()) < count) {
    const std::int64_t x = d.range(1, top);
    if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
  }
  std::vector<std::int64_t> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> steps;
  std::string answer, list;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const std::string x = str(sorted[i]);
    answer += (i ? ", " : "") + x;
    list += (i ? ", " : "") + str(v[i]);
    if (i == 0) steps.push_back((en ? "The smallest is " : "El menor es ") + x + ".");
    else if (i + 1 == sorted.size()) steps.push_back((en ? "The largest is " : "El mayor es ") + x + ".");
    else steps.push_back((en ? "Then comes " : "Después viene ") + x + ".");
  }
  return comparison(l, (en ? "Order these numbers from smallest to largest: " : "Ordena estos números de menor a mayor: ") + list + ".",
                    steps, answer, "order:" + list);
}

// Levels 2-4: fractions with larger denominators (cross-multiplied: 2..19, 11..29, 21..49), decimals of
// unequal length (2 against 3 places, 3 against 4, 4 against 5), longer lists to order.
Problem harder_comparison(Draw& d, Language l, int level) {
  const bool en = l == Language::en;
  const std::string larger = en ? " is larger." : " es mayor.";
  switch (d.range(0, 2)) {
    case 0: {
      const std::int64_t lo = level == 2 ? 2 : level == 3 ? 11 : 21, hi = level == 2 ? 19 : level == 3 ? 29 : 49;
      std::int64_t p1, q1, p2, q2;
      do {
        q1 = d.range(lo, hi);
        q2 = d.range(lo, hi);
        p1 = d.range(1, q1 - 1);
        p2 = d.range(1, q2 - 1);
      } while (p1 * q2 == p2 * q1 || q1 == q2);
      const std::string a = str(p1) + "/" + str(q1), b = str(p2) + "/" + str(q2);
      const std::string x = p1 * q2 > p2 * q1 ? a : b;
      return comparison(l, which_larger(d, l, a, b),
                        {(en ? "Cross-multiply: " : "Multiplicamos en cruz: ") + str(p1) + " " + op_word('*', l) + " " + str(q2) +
                             (en ? " is " : " es ") + str(p1 * q2) + (en ? " and " : " y ") + str(p2) + " " + op_word('*', l) + " " +
                             str(q1) + (en ? " is " : " es ") + str(p2 * q1) + ".",
                         str(std::max(p1 * q2, p2 * q1)) + " > " + str(std::min(p1 * q2, p2 * q1)) + (en ? ", so " : ", así que ") + x + larger},
                        x, "frac:" + a + "," + b);
    }
    case 1: {  // 0.47 against 0.468: the longer decimal is not the larger one
      const int places = level;
      std::int64_t scale = 1;
      for (int i = 0; i < places; ++i) scale *= 10;
      std::int64_t a = d.range(scale / 10, scale - 1), b = d.range(scale, 10 * scale - 1);  // places and places + 1 digits
      if (a % 10 == 0) ++a;
      if (a * 10 == b) ++b;
      if (b % 10 == 0) ++b;
      const std::string da = "0." + str(a), db = "0." + str(b);
      const std::string x = a * 10 > b ? da : db;
      return comparison(l, d.coin() ? which_larger(d, l, da, db) : which_larger(d, l, db, da),
                        {(en ? "Write both with the same number of decimal places: " : "Escribimos los dos con el mismo número de decimales: ") +
                             da + "0" + (en ? " and " : " y ") + db + ".",
                         str(std::max(a * 10, b)) + " > " + str(std::min(a * 10, b)) + (en ? ", so " : ", así que ") + x + larger},
                        x, "dec:" + da + "," + db);
    }
    default:
      return order_numbers(d, l, d.range(2 + 2 * level, 4 + 2 * level), level == 2 ? 999 : 9999);
  }
}

}  // namespace

Problem make_comparison(Draw& d, Language l, int level) {
  if (level > 1) return harder_comparison(d, l, level);
  const bool en = l == Language::en;
  const std::string larger = en ? " is larger." : " es mayor.";
  switch (d.range(0, 3)) {
    case 0: {  // two whole numbers: their difference decides
      const std::int64_t a = d.range(100, 999), b = a + (d.coin() ? 1 : -1) * d.range(1, 99);
      const std::int64_t big = std::max(a, b), small = std::min(a, b);
      return comparison(l, which_larger(d, l, str(a), str(b)),
                        {str(big) + " - " + str(small) + " = " + str(big - small) + (en ? ", which is more than zero." : ", que es mayor que cero."),
                         (en ? "So " : "Por lo tanto, ") + str(big) + larger},
                        str(big), "int:" + str(a) + "," + str(b));
    }
    case 1: {  // tenths against hundredths: the classic 0.7 vs 0.65 trap
      const std::int64_t tenths = d.range(1, 9);
      std::int64_t hundredths = d.range(10, 98);
      if (hundredths % 10 == 0) ++hundredths;
      const std::string a = "0." + str(tenths), b = "0." + str(hundredths);
      const bool first = tenths * 10 > hundredths;
      const std::string x = first ? a : b;
      const std::string h1 = str(tenths * 10), h2 = str(hundredths);
      return comparison(l, d.coin() ? which_larger(d, l, a, b) : which_larger(d, l, b, a),
                        {(en ? "Write both with two decimal places: " : "Escribimos los dos con dos decimales: ") + a + "0" +
                             (en ? " and " : " y ") + b + ".",
                         en ? h1 + " hundredths against " + h2 + " hundredths, so " + x + larger
                            : h1 + " centésimas contra " + h2 + " centésimas, así que " + x + larger},
                        x, "dec:" + a + "," + b);
    }
    case 2: {  // two proper fractions over a common denominator
      std::int64_t p1, q1, p2, q2;
      do {
        q1 = d.range(2, 9);
        q2 = d.range(2, 9);
        p1 = d.range(1, q1 - 1);
        p2 = d.range(1, q2 - 1);
      } while (p1 * q2 == p2 * q1);
      const std::string a = str(p1) + "/" + str(q1), b = str(p2) + "/" + str(q2), q = str(q1 * q2);
      const std::string x = p1 * q2 > p2 * q1 ? a : b;
      const std::int64_t n1 = p1 * q2, n2 = p2 * q1;
      return comparison(l, which_larger(d, l, a, b),
                        {(en ? "Use the common denominator " : "Usamos el denominador común ") + q + ": " + a + " = " + str(n1) + "/" + q +
                             (en ? " and " : " y ") + b + " = " + str(n2) + "/" + q + ".",
                         str(std::max(n1, n2)) + " > " + str(std::min(n1, n2)) + (en ? ", so " : ", así que ") + x + larger},
                        x, "frac:" + a + "," + b);
    }
    default:  // order three to five numbers
      return order_numbers(d, l, d.range(3, 5), 99);
  }
}

namespace {

struct Person {
  std::string name;
  bool female;
};
struct Thing {
  std::string en, en_plural, es, es_plural;
  bool feminine;  // Spanish gender: cuántas/cuántos, una/un
};

const std::vector<Person>& people() {
  static const std::vector<Person> v{{"Ana", true},    {"Luis", false},  {"María", true}, {"Carlos", false},
                                     {"Sofía", true},  {"Pedro", false}, {"Lucía", true}, {"Diego", false}};
  return v;
}

const std::vector<Thing>& things() {
  static const std::vector<Thing> v{{"apple", "apples", "manzana", "manzanas", true},   {"pencil", "pencils", "lápiz", "lápices", false},
                                    {"book", "books", "libro", "libros", false},         {"cookie", "cookies", "galleta", "galletas", true},
                                    {"marble", "marbles", "canica", "canicas", true},     {"orange", "oranges", "naranja", "naranjas", true},
                                    {"card", "cards", "carta", "cartas", true},           {"toy car", "toy cars", "coche de juguete", "coches de juguete", false}};
  return v;
}

// Quantities up to twenty are written in words in the question: reading numbers is part of the task.
std::string qty(std::int64_t n, Language l) { return n <= 20 ? number_words(n, l) : str(n); }

// Levels 2-4: a story of level + 1 events (buys more, gives some away, receives boxes of equal size, gives
// half away), each one step of the worked solution; the question asks for what is left at the end.
Problem event_chain(Draw& d, Language l, int level, const Person& who, const Person& other, const Thing& t) {
  const bool en = l == Language::en;
  const std::string& objs = en ? t.en_plural : t.es_plural;
  const std::string how_many = en ? "How many " : (t.feminine ? "¿Cuántas " : "¿Cuántos ");
  const std::string pronoun = en ? (who.female ? "She" : "He") : "";
  std::int64_t have = d.range(10, 20 * level);
  Problem p;
  p.kind = ProblemKind::word_problem;
  p.language = l;
  p.prompt = who.name + (en ? " has " : " tiene ") + qty(have, l) + " " + objs + ".";
  p.solution_steps.push_back(who.name + (en ? " starts with " : " empieza con ") + str(have) + ".");
  p.instance_key = "word:chain:" + str(have);
  for (int e = 0; e <= level; ++e) {
    const std::int64_t kind = d.range(0, 3);
    std::string told, step, key;
    const auto subject = [&] { return en ? " " + pronoun : ""; };
    if (kind == 0) {  // buys more
      const std::int64_t b = d.range(2, 10 * level);
      told = en ? subject() + " buys " + qty(b, l) + " more." : " Compra " + qty(b, l) + " más.";
      step = (en ? "After buying " : "Después de comprar ") + str(b) + (en ? ": " : ": ") + str(have) + " + " + str(b) + " = " +
             str(have + b) + ".";
      key = "+" + str(b);
      have += b;
    } else if (kind == 1 && have > 2) {  // gives some away
      const std::int64_t c = d.range(1, have - 1);
      told = en ? subject() + " gives " + qty(c, l) + " to " + other.name + "." : " Le da " + qty(c, l) + " a " + other.name + ".";
      step = (en ? "After giving " : "Después de dar ") + str(c) + (en ? " away: " : ": ") + str(have) + " - " + str(c) + " = " +
             str(have - c) + ".";
      key = "-" + str(c);
      have -= c;
    } else if (kind == 2) {  // receives boxes
      const std::int64_t boxes = d.range(2, 4), each = d.range(2, 6 + level);
      told = en ? subject() + " receives " + qty(boxes, l) + " boxes with " + qty(each, l) + " " + objs + " in each."
                : " Recibe " + qty(boxes, l) + " cajas con " + qty(each, l) + " " + objs + " en cada una.";
      step = str(boxes) + " " + op_word('*', l) + " " + str(each) + (en ? " is " : " es ") + str(boxes * each) +
             (en ? ", and " : ", y ") + str(have) + " + " + str(boxes * each) + " = " + str(have + boxes * each) + ".";
      key = "+" + str(boxes) + "x" + str(each);
      have += boxes * each;
    } else if (have % 2 == 0) {  // gives half away
      told = en ? subject() + " gives half of them to " + other.name + "." : " Le da la mitad a " + other.name + ".";
      step = (en ? "Half of " : "La mitad de ") + str(have) + (en ? " is " : " es ") + str(have / 2) + ", " + str(have) + " - " +
             str(have / 2) + " = " + str(have / 2) + ".";
      key = "/2";
      have /= 2;
    } else {  // an odd count cannot be halved: buys one more instead
      told = en ? subject() + " buys one more." : " Compra uno más.";
      if (!en && t.feminine) told = " Compra una más.";
      step = (en ? "After buying one more: " : "Después de comprar una más: ") + str(have) + " + 1 = " + str(have + 1) + ".";
      if (!en && !t.feminine) step = "Después de comprar uno más: " + str(have) + " + 1 = " + str(have + 1) + ".";
      key = "+1";
      have += 1;
    }
    p.prompt += told;
    p.solution_steps.push_back(step);
    p.instance_key += "|" + key;
  }
  p.prompt += " " + how_many + objs + (en ? " does " + who.name + " have now?" : " tiene " + who.name + " ahora?");
  p.solution_steps.push_back((en ? "So " : "Así que ") + who.name + (en ? " has " : " tiene ") + str(have) + ".");
  p.answer = str(have);
  return p;
}

}  // namespace

Problem make_word_problem(Draw& d, Language l, int level) {
  const bool en = l == Language::en;
  const Person& who = d.pick(people());
  const Person* other = &d.pick(people());
  while (other->name == who.name) other = &d.pick(people());
  const Thing& t = d.pick(things());
  if (level > 1) return event_chain(d, l, level, who, *other, t);
  const std::string& objs = en ? t.en_plural : t.es_plural;
  const std::string how_many = en ? "How many " : (t.feminine ? "¿Cuántas " : "¿Cuántos ");
  Problem p;
  p.kind = ProblemKind::word_problem;
  p.language = l;
  std::int64_t answer = 0;
  switch (d.range(0, 3)) {
    case 0: {  // has, buys more, gives some away
      const std::int64_t a = d.range(5, 20), b = d.range(2, 10), c = d.range(2, a + b - 2), s = a + b;
      answer = s - c;
      p.prompt = en ? who.name + " has " + qty(a, l) + " " + objs + ". " + (who.female ? "She" : "He") + " buys " + qty(b, l) +
                          " more and gives " + qty(c, l) + " to " + other->name + ". " + how_many + objs + " does " + who.name + " have now?"
                    : who.name + " tiene " + qty(a, l) + " " + objs + ". Compra " + qty(b, l) + " más y le da " + qty(c, l) + " a " +
                          other->name + ". " + how_many + objs + " tiene " + who.name + " ahora?";
      p.solution_steps = {en ? who.name + " starts with " + str(a) + " " + objs + "." : who.name + " empieza con " + str(a) + " " + objs + ".",
                          (en ? "After buying " + str(b) + " more, " + who.name + " has " : "Después de comprar " + str(b) + " más, tiene ") +
                              str(a) + " + " + str(b) + " = " + str(s) + ".",
                          (en ? "After giving " + str(c) + " to " + other->name + ", " + who.name + " has "
                              : "Después de darle " + str(c) + " a " + other->name + ", tiene ") +
                              str(s) + " - " + str(c) + " = " + str(answer) + "."};
      p.instance_key = "word:give:" + str(a) + "," + str(b) + "," + str(c);
      break;
    }
    case 1: {  // equal groups
      const std::int64_t each = d.range(2, 12), boxes = d.range(2, 12);
      answer = each * boxes;
      p.prompt = en ? "A box holds " + qty(each, l) + " " + objs + ". How many " + objs + " are there in " + qty(boxes, l) + " boxes?"
                    : "Una caja tiene " + qty(each, l) + " " + objs + ". " + how_many + objs + " hay en " + qty(boxes, l) + " cajas?";
      p.solution_steps = {en ? "Each box holds " + str(each) + " " + objs + " and there are " + str(boxes) + " boxes."
                             : "Cada caja tiene " + str(each) + " " + objs + " y hay " + str(boxes) + " cajas.",
                          str(boxes) + " " + op_word('*', l) + " " + str(each) + (en ? " is " : " es ") + str(answer) +
                              (en ? ", so there are " : ", así que hay ") + str(answer) + " " + objs + "."};
      p.instance_key = "word:groups:" + str(each) + "," + str(boxes);
      break;
    }
    case 2: {  // fair sharing
      const std::int64_t each = d.range(2, 12), friends = d.range(2, 8), total = each * friends;
      answer = each;
      p.prompt = en ? who.name + " shares " + qty(total, l) + " " + objs + " equally among " + qty(friends, l) + " friends. How many " +
                          objs + " does each friend get?"
                    : who.name + " reparte " + qty(total, l) + " " + objs + " en partes iguales entre " + qty(friends, l) + " amigos. " +
                          how_many + objs + " recibe cada amigo?";
      p.solution_steps = {en ? str(total) + " " + objs + " are shared among " + str(friends) + " friends."
                             : "Se reparten " + str(total) + " " + objs + " entre " + str(friends) + " amigos.",
                          str(total) + " " + op_word('/', l) + " " + str(friends) + (en ? " is " : " es ") + str(each) +
                              (en ? ", so each friend gets " : ", así que cada amigo recibe ") + str(each) + "."};
      p.instance_key = "word:share:" + str(total) + "," + str(friends);
      break;
    }
    default: {  // change from a purchase
      const std::int64_t price = d.range(2, 9), k = d.range(2, 6), cost = price * k, paid = (cost / 10 + 1) * 10;
      answer = paid - cost;
      const std::string one = en ? "One " + t.en : (t.feminine ? "Una " : "Un ") + t.es;
      p.prompt = en ? one + " costs " + str(price) + " dollars. " + who.name + " buys " + qty(k, l) + " " + objs + " and pays with " +
                          str(paid) + " dollars. How much change does " + who.name + " get?"
                    : one + " cuesta " + str(price) + " dólares. " + who.name + " compra " + qty(k, l) + " " + objs + " y paga con " +
                          str(paid) + " dólares. ¿Cuánto cambio recibe " + who.name + "?";
      p.solution_steps = {en ? str(k) + " " + objs + " cost " + str(k) + " times " + str(price) + ", which is " + str(cost) + " dollars."
                             : str(k) + " " + objs + " cuestan " + str(k) + " por " + str(price) + ", que es " + str(cost) + " dólares.",
                          (en ? "The change is " : "El cambio es ") + str(paid) + " - " + str(cost) + " = " + str(answer) +
                              (en ? " dollars." : " dólares.")};
      p.instance_key = "word:change:" + str(price) + "," + str(k);
      break;
    }
  }
  p.answer = str(answer);
  return p;
}

}  // namespace r1
