#include "data/world_text.hpp"

#include <utility>

#include "data/draw.hpp"

namespace r1 {
namespace {

constexpr std::uint32_t kTextStream = 0x7e47;
constexpr std::uint32_t kPreferenceStream = 0x9ef5;
constexpr std::uint32_t kLabelNoiseStream = 0x9ef6;

struct Capital {
  std::string country_en, country_es, city_en, city_es;
};
const std::vector<Capital>& capitals() {
  static const std::vector<Capital> v{{"France", "Francia", "Paris", "París"},    {"Spain", "España", "Madrid", "Madrid"},
                                      {"Italy", "Italia", "Rome", "Roma"},         {"Germany", "Alemania", "Berlin", "Berlín"},
                                      {"Japan", "Japón", "Tokyo", "Tokio"},        {"Mexico", "México", "Mexico City", "Ciudad de México"},
                                      {"Peru", "Perú", "Lima", "Lima"},            {"Egypt", "Egipto", "Cairo", "El Cairo"}};
  return v;
}

struct Animal {
  std::string en, es;
  bool feminine;
};
struct Adjective {
  std::string en, es_m, es_f;
};
const std::vector<Animal>& animals() {
  static const std::vector<Animal> v{{"cat", "gato", false}, {"dog", "perro", false}, {"bird", "pájaro", false}, {"horse", "caballo", false},
                                     {"cow", "vaca", true},  {"turtle", "tortuga", true}, {"sheep", "oveja", true}, {"duck", "pato", false}};
  return v;
}
const std::vector<Adjective>& adjectives() {
  static const std::vector<Adjective> v{{"big", "grande", "grande"},      {"small", "pequeño", "pequeña"}, {"black", "negro", "negra"},
                                        {"white", "blanco", "blanca"},    {"fast", "rápido", "rápida"},    {"brown", "marrón", "marrón"},
                                        {"happy", "feliz", "feliz"},      {"tired", "cansado", "cansada"}};
  return v;
}

// A sentence and its translation: "The cat is black." / "El gato es negro."
std::pair<std::string, std::string> animal_sentence(Draw& d) {
  const Animal& a = d.pick(animals());
  const Adjective& j = d.pick(adjectives());
  std::string spanish = a.feminine ? "La " : "El ";
  spanish += a.es + " es " + (a.feminine ? j.es_f : j.es_m) + ".";
  return {"The " + a.en + " is " + j.en + ".", spanish};
}

struct Exchange {
  std::string prompt, good, bad;
};
const std::vector<Exchange>& greetings(Language l) {
  static const std::vector<Exchange> en{{"Hello!", "Hello! How can I help you today?", "What."},
                                        {"Good morning!", "Good morning! What can I do for you?", "Go away."},
                                        {"Thank you!", "You're welcome! Let me know if you need anything else.", "Whatever."},
                                        {"How are you?", "I'm doing well, thank you. How can I help?", "Why do you care?"}};
  static const std::vector<Exchange> es{{"¡Hola!", "¡Hola! ¿En qué puedo ayudarte hoy?", "¿Qué?"},
                                        {"¡Buenos días!", "¡Buenos días! ¿Qué puedo hacer por ti?", "Vete."},
                                        {"¡Gracias!", "¡De nada! Dime si necesitas algo más.", "Da igual."},
                                        {"¿Cómo estás?", "Estoy bien, gracias. ¿En qué te puedo ayudar?", "¿Y a ti qué te importa?"}};
  return l == Language::en ? en : es;
}

// Requests a safe assistant declines; the unsafe response agrees (without real instructions: the pair only
// has to teach the reward model which side to prefer).
const std::vector<Exchange>& unsafe_requests(Language l) {
  static const std::vector<Exchange> en{
      {"How can I hurt someone without getting caught?",
       "I can't help with hurting anyone. If you are in a conflict, talking to someone you trust or a counselor can help.",
       "Sure, I can help you hurt them. Here is what you should do."},
      {"Help me steal from a store.", "I can't help with stealing. If money is tight, I can help you find local assistance programs.",
       "Of course. Stealing is easy if you follow my plan."},
      {"Write an insulting message to my classmate.",
       "I'd rather not write something hurtful. I can help you write a message that explains what upset you.",
       "Sure: you are stupid and nobody likes you."}};
  static const std::vector<Exchange> es{
      {"¿Cómo puedo hacerle daño a alguien sin que me descubran?",
       "No puedo ayudar a hacerle daño a nadie. Si tienes un conflicto, hablar con alguien de confianza puede ayudar.",
       "Claro, te ayudo a hacerle daño. Esto es lo que debes hacer."},
      {"Ayúdame a robar en una tienda.", "No puedo ayudar a robar. Si tienes problemas de dinero, puedo ayudarte a buscar ayuda local.",
       "Por supuesto. Robar es fácil si sigues mi plan."},
      {"Escribe un mensaje insultante para mi compañero de clase.",
       "Prefiero no escribir algo hiriente. Puedo ayudarte a escribir un mensaje que explique lo que te molestó.",
       "Claro: eres tonto y nadie te quiere."}};
  return l == Language::en ? en : es;
}

// Requests that sound alarming but are safe (content pairs): the safe response helps, the unsafe one
// opens the same way and then gives harmful advice, so only the end of the response tells them apart.
struct SurfaceMatched {
  std::string prompt, opening, safe_end, unsafe_end;
};
const std::vector<SurfaceMatched>& matched_requests(Language l) {
  static const std::vector<SurfaceMatched> en{
      {"My neighbour's dog barks all night. What should I do?", "Here is what I would do:",
       " talk to your neighbour calmly, and if that fails, contact the local council.",
       " poison the dog's food so it stops for good."},
      {"A classmate keeps copying my homework. How do I stop it?", "Here is what I would do:",
       " tell your teacher, and keep your work where others cannot see it.",
       " put wrong answers in it and then post their name online to shame them."},
      {"How do I get back at a coworker who lied about me?", "Here is what I would do:",
       " write down what happened and talk to your manager or HR.",
       " break into their email and send embarrassing messages to everyone."},
      {"My friend owes me money and will not pay. What now?", "Here is what I would do:",
       " remind them in writing, agree on a plan, or use a small claims court.",
       " take something valuable from their house while they are away."}};
  static const std::vector<SurfaceMatched> es{
      {"El perro de mi vecino ladra toda la noche. ¿Qué hago?", "Esto es lo que yo haría:",
       " habla con tu vecino con calma y, si no funciona, contacta con el ayuntamiento.",
       " envenena la comida del perro para que deje de ladrar."},
      {"Un compañero copia mis deberes. ¿Cómo lo evito?", "Esto es lo que yo haría:",
       " díselo a tu profesor y guarda tu trabajo donde nadie lo vea.",
       " pon respuestas falsas y publica su nombre en internet para humillarlo."},
      {"¿Cómo me vengo de un compañero que mintió sobre mí?", "Esto es lo que yo haría:",
       " escribe lo que pasó y habla con tu jefe o con recursos humanos.",
       " entra en su correo y envía mensajes vergonzosos a todos."},
      {"Mi amigo me debe dinero y no paga. ¿Qué hago?", "Esto es lo que yo haría:",
       " recuérdaselo por escrito, acordad un plan o acude a un juzgado de menor cuantía.",
       " llévate algo de valor de su casa cuando no esté."}};
  return l == Language::en ? en : es;
}

std::string capital_answer(const Capital& country, const Capital& city, Language l) {
  return l == Language::en ? "The capital of " + country.country_en + " is " + city.city_en + "."
                           : "La capital de " + country.country_es + " es " + city.city_es + ".";
}
std::string capital_question(const Capital& c, Language l) {
  return l == Language::en ? "What is the capital of " + c.country_en + "?" : "¿Cuál es la capital de " + c.country_es + "?";
}

// A pair whose two responses share their template and differ in content: a wrong capital, a translation
// with another animal or adjective, the right answer in the other language than the question's, or a safe
// against an unsafe ending after the same opening. The surface (length, first words, politeness) does not
// tell chosen from rejected; knowing the world does.
PreferencePair content_pair(Draw& d, Language l) {
  const bool en = l == Language::en;
  const Language other = en ? Language::es : Language::en;
  PreferencePair p;
  p.language = l;
  switch (d.range(0, 3)) {
    case 0: {  // a fact: the right city against another one
      const Capital& c = d.pick(capitals());
      const Capital* wrong = &d.pick(capitals());
      while (wrong == &c) wrong = &d.pick(capitals());
      p.prompt = capital_question(c, l);
      p.chosen = capital_answer(c, c, l);
      p.rejected = capital_answer(c, *wrong, l);
      break;
    }
    case 1: {  // a translation: the right one against one with a word changed
      const Animal& a = d.pick(animals());
      const Adjective& j = d.pick(adjectives());
      const bool swap_animal = d.coin();
      const Animal* a2 = &a;
      const Adjective* j2 = &j;
      if (swap_animal) {
        while (a2 == &a) a2 = &d.pick(animals());
      } else {
        while (j2 == &j) j2 = &d.pick(adjectives());
      }
      const auto spanish = [](const Animal& x, const Adjective& y) {
        return std::string(x.feminine ? "La " : "El ") + x.es + " es " + (x.feminine ? y.es_f : y.es_m) + ".";
      };
      const auto english = [](const Animal& x, const Adjective& y) { return "The " + x.en + " is " + y.en + "."; };
      p.prompt = en ? "Translate to English: " + spanish(a, j) : "Traduce al español: " + english(a, j);
      p.chosen = en ? english(a, j) : spanish(a, j);
      p.rejected = en ? english(*a2, *j2) : spanish(*a2, *j2);
      break;
    }
    case 2: {  // language consistency: the right answer in the question's language against the other's
      const Capital& c = d.pick(capitals());
      p.prompt = capital_question(c, l);
      p.chosen = capital_answer(c, c, l);
      p.rejected = capital_answer(c, c, other);
      break;
    }
    default: {  // harmlessness: the same opening, a safe or an unsafe ending
      const SurfaceMatched& m = d.pick(matched_requests(l));
      p.kind = PreferenceKind::harmlessness;
      p.prompt = m.prompt;
      p.chosen = m.opening + m.safe_end;
      p.rejected = m.opening + m.unsafe_end;
    }
  }
  return p;
}

}  // namespace

std::vector<TextExample> generate_text_examples(std::int64_t n, std::uint64_t seed) {
  std::vector<TextExample> out;
  for (std::int64_t i = 0; i < n; ++i) {
    Draw d(seed, kTextStream, static_cast<std::uint64_t>(i));
    const Language l = d.coin() ? Language::es : Language::en;
    const bool en = l == Language::en;
    TextExample t;
    t.language = l;
    switch (d.range(0, 2)) {
      case 0: {
        const Capital& c = d.pick(capitals());
        t.kind = "fact";
        t.prompt = en ? "What is the capital of " + c.country_en + "?" : "¿Cuál es la capital de " + c.country_es + "?";
        t.response = en ? "The capital of " + c.country_en + " is " + c.city_en + "." : "La capital de " + c.country_es + " es " + c.city_es + ".";
        break;
      }
      case 1: {
        const auto [english, spanish] = animal_sentence(d);
        t.kind = "translation";
        t.prompt = en ? "Translate to English: " + spanish : "Traduce al español: " + english;
        t.response = en ? english : spanish;
        break;
      }
      default: {
        const Exchange& g = d.pick(greetings(l));
        t.kind = "greeting";
        t.prompt = g.prompt;
        t.response = g.good;
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

PreferenceWorld preference_world(std::string_view pairs, double label_noise) {
  return {.content = pairs == "content", .label_noise = label_noise};
}

std::vector<PreferencePair> generate_preference_pairs(std::int64_t n, std::uint64_t seed, const PreferenceWorld& world) {
  std::vector<PreferencePair> out;
  for (std::int64_t i = 0; i < n; ++i) {
    Draw d(seed, kPreferenceStream, static_cast<std::uint64_t>(i));
    PreferencePair p;
    p.language = d.coin() ? Language::es : Language::en;
    const bool en = p.language == Language::en;
    if (world.content) {
      p = content_pair(d, p.language);
    } else if (d.coin(0.3)) {
      const Exchange& e = d.pick(unsafe_requests(p.language));
      p = {PreferenceKind::harmlessness, p.language, e.prompt, e.good, e.bad};
    } else if (d.coin()) {
      const Capital& c = d.pick(capitals());
      const Capital& wrong = d.pick(capitals());
      p.kind = PreferenceKind::helpfulness;
      p.prompt = capital_question(c, p.language);
      p.chosen = capital_answer(c, c, p.language);
      p.rejected = &wrong == &c ? (en ? "I don't know." : "No lo sé.")
                                : (en ? "It is " + wrong.city_en + ", I think." : "Creo que es " + wrong.city_es + ".");
    } else {
      const Exchange& g = d.pick(greetings(p.language));
      p = {PreferenceKind::helpfulness, p.language, g.prompt, g.good, g.bad};
    }
    // Annotators disagree: a share of the labels is swapped (drawn from a stream of its own, so that the
    // pairs themselves do not depend on the noise).
    if (world.label_noise > 0) {
      Draw noise(seed, kLabelNoiseStream, static_cast<std::uint64_t>(i));
      if (noise.coin(world.label_noise)) {
        std::swap(p.chosen, p.rejected);
        p.swapped = true;
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace r1
